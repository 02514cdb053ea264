"""airmark ports [--json]: serial ports with their USB identity and the board each looks like."""

import click

from . import serialio


@click.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of ports.")
def command(as_json):
    """List serial ports: device, USB VID:PID, serial number, description, likely board.

    The board guess comes from the `usb` hints in boards/*.json.
    """
    ports = serialio.list_ports()
    if as_json:
        click.echo(serialio.ports_json(ports))
        return 0
    if not ports:
        click.echo("no serial ports found")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("port", "usb id", "serial", "description", "looks like"):
        table.add_column(col)
    for row in serialio.port_table_rows(ports):
        table.add_row(*row)
    Console().print(table)
    return 0
