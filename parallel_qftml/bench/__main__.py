"""python -m parallel_qftml.bench: the Metropolis benchmark (bench/metropolis.py)."""
import sys

from .metropolis import main

sys.exit(main())
