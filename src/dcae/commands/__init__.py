"""The commands of the ``dcae`` command line (the entry point is :mod:`dcae.cli`), one module
per group; none imports PyTorch until a command that codes or trains runs."""
