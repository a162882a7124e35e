"""Names of the Virtual Cell Challenge's file layout.

Constants only, with no imports, so that the command line can show them as defaults
without loading numpy or pandas.
"""

# The obs column of perturbation labels in the challenge's files.
SCORER_KEY = "target_gene"
# The challenge's label of control cells.
VCC_CONTROL_LABEL = "non-targeting"
