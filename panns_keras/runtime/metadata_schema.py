"""Field ids and enum values of MediaPipe's ``metadata_schema.fbs`` (TFLite model metadata).

Shared by the writer (:mod:`panns_keras.export.tflite_metadata`) and the reader
(:mod:`panns_keras.runtime.tflite_metadata`).
"""

METADATA_BUFFER_NAME = "TFLITE_METADATA"
METADATA_FILE_IDENTIFIER = b"M001"
TFLITE_FILE_IDENTIFIER = b"TFL3"
LABELS_FILE_NAME = "labels.txt"
# AudioProperties were added to the metadata schema in version 1.3.0; nothing newer is used.
MIN_PARSER_VERSION = "1.3.0"

# --- enums of metadata_schema.fbs -------------------------------------------------------
ASSOCIATED_FILE_TYPES = {
    0: "UNKNOWN",
    1: "DESCRIPTIONS",
    2: "TENSOR_AXIS_LABELS",
    3: "TENSOR_VALUE_LABELS",
    4: "TENSOR_AXIS_SCORE_CALIBRATION",
    5: "VOCABULARY",
    6: "SCANN_INDEX_FILE",
}
TENSOR_AXIS_LABELS = 2
# union ContentProperties (0 is NONE)
CONTENT_PROPERTIES = {
    1: "FeatureProperties",
    2: "ImageProperties",
    3: "BoundingBoxProperties",
    4: "AudioProperties",
}
FEATURE_PROPERTIES = 1
AUDIO_PROPERTIES = 4
# union ProcessUnitOptions (0 is NONE)
PROCESS_UNIT_OPTIONS = {
    1: "NormalizationOptions",
    2: "ScoreCalibrationOptions",
    3: "ScoreThresholdingOptions",
    4: "BertTokenizerOptions",
    5: "SentencePieceTokenizerOptions",
    6: "RegexTokenizerOptions",
}

# --- field ids (declaration order; a union occupies two ids: <name>_type then <name>) -----
# table AssociatedFile
AF_NAME, AF_DESCRIPTION, AF_TYPE, AF_LOCALE, AF_VERSION = range(5)
AF_NUM_FIELDS = 5
# table AudioProperties
AUDIO_SAMPLE_RATE, AUDIO_CHANNELS = range(2)
# table Content
CONTENT_PROPS_TYPE, CONTENT_PROPS, CONTENT_RANGE = range(3)
# table ProcessUnit
PU_OPTIONS_TYPE, PU_OPTIONS = range(2)
# table TensorMetadata
(
    TM_NAME,
    TM_DESCRIPTION,
    TM_DIMENSION_NAMES,
    TM_CONTENT,
    TM_PROCESS_UNITS,
    TM_STATS,
    TM_ASSOCIATED_FILES,
) = range(7)
TM_NUM_FIELDS = 7
# table SubGraphMetadata
(
    SG_NAME,
    SG_DESCRIPTION,
    SG_INPUT_TENSOR_METADATA,
    SG_OUTPUT_TENSOR_METADATA,
    SG_ASSOCIATED_FILES,
    SG_INPUT_PROCESS_UNITS,
    SG_OUTPUT_PROCESS_UNITS,
    SG_INPUT_TENSOR_GROUPS,
    SG_OUTPUT_TENSOR_GROUPS,
    SG_CUSTOM_METADATA,
) = range(10)
SG_NUM_FIELDS = 10
# table ModelMetadata
(
    MM_NAME,
    MM_DESCRIPTION,
    MM_VERSION,
    MM_SUBGRAPH_METADATA,
    MM_AUTHOR,
    MM_LICENSE,
    MM_ASSOCIATED_FILES,
    MM_MIN_PARSER_VERSION,
) = range(8)
MM_NUM_FIELDS = 8

# TFLite schema: TensorType values accepted by MediaPipe for the audio input / score output.
TFLITE_FLOAT32 = 0
TFLITE_FLOAT16 = 1
# TFLite schema: Buffer.data is declared with force_align: 16.
BUFFER_ALIGNMENT = 16
