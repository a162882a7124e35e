"""The defaults of the GO gene embedding's recipe (:mod:`~samsvae_plus.data.go_embedding`).

Constants only, with no imports, so that ``samsvae-plus go-embedding`` shows them as its
defaults without loading numpy, pandas or scipy.
"""

N_COMPONENTS = 128  # embedding width
MIN_GENES = 5  # GO terms with fewer genes are dropped
MAX_GENES = 1000  # GO terms with more genes are dropped
