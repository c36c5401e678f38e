"""``python -m rangememo``: the ``rangememo`` command."""

from rangememo._cli import main

if __name__ == "__main__":
    main(prog_name="rangememo")
