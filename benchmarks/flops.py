"""Forward FLOPs per 10 s clip at 32 kHz (the paper's Table XII figures): one table for
every benchmark's share-of-the-matmul-ceiling figure."""

PAPER_FLOPS = {"cnn14": 42.22e9, "cnn6": 21.986e9, "mobilenet_v1": 3.614e9}
