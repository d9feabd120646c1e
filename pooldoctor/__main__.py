"""`python -m pooldoctor`: the same entry point as the `pooldoctor` script."""

from pooldoctor.cli import main

main()
