"""The data preparation launchers: ``python -m data_prep`` (the same program as
``panns-keras prepare``) and ``python -m data_prep.beam_pipeline`` (Apache Beam). The code
they run is ``panns_keras.data.prepare``; this folder is not installed."""
