"""``python -m rnnmem`` and the ``rnnmem`` script: pin the arithmetic path first, then run the command line."""

from rnnmem.core.portable import pin_process


def entry() -> int:
    pin_process()  # re-executes under the portable settings before torch and numpy load
    from rnnmem.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(entry())
