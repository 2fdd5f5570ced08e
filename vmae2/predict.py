"""`python -m vmae2.predict`: the first name of `python -m vmae2.tools.predict`."""

from vmae2.tools.cli import run_cli
from vmae2.tools.predict import main

if __name__ == '__main__':
    run_cli(main)
