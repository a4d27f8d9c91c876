"""TFRecord schema, tf.data input pipelines and mixup for panns-keras."""
