"""`pooldoctor runbooks list | show SLUG`."""

import typer

runbooks_app = typer.Typer(help="List and show the on-call runbooks.", no_args_is_help=True)
