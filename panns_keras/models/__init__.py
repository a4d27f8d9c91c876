"""PANNs model specs, registry, layers and the AudioTagger model."""
