import sys

from panns_keras.cli import main

sys.exit(main())
