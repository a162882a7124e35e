"""The ``samsvae-plus`` command line: one module per subcommand, joined in :mod:`.main`."""
