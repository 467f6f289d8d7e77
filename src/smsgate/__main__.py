"""``python -m smsgate`` and the ``smsgate`` command run the CLI."""

from smsgate.importing import without_gc


def main() -> None:
    with without_gc():
        from smsgate.cli import app
    app()


if __name__ == "__main__":
    main()
