"""`python -m vmae2.convert`: the first name of `python -m vmae2.tools.convert`."""

from vmae2.tools.cli import run_cli
from vmae2.tools.convert import main

if __name__ == '__main__':
    run_cli(main)
