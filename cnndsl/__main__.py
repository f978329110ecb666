"""`python -m cnndsl`: the same command line as `cnndsl`, where the script is not on PATH."""

from .cli import main

main(prog_name="cnndsl")
