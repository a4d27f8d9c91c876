"""Per-backend layers of the training step: TensorFlow (``tf_engine``) and JAX
(``jax_engine``), both implementing the ``engine.Engine`` protocol."""
