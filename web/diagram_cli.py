"""`flask --app web state-diagram cart|payment|refund`: the machine's transition table as a Mermaid diagram."""

import click
from flask import Flask
from transitions.extensions import GraphMachine

from machines import CART_MACHINE, PAYMENT_MACHINE, REFUND_MACHINE
from machines.table import TransitionTable

MACHINES = {"cart": CART_MACHINE, "payment": PAYMENT_MACHINE, "refund": REFUND_MACHINE}


class _Drawn:
    """The model the diagram machine needs: transitions cannot draw a machine without one."""


def mermaid_diagram(table: TransitionTable) -> str:
    """A Mermaid `stateDiagram-v2` drawn by transitions' GraphMachine from `table`, conditions shown.

    GraphMachine marks the model's current state and writes a title block;
    a definition has no current state, so the styling lines and the title
    are dropped, and trailing blanks trimmed so the text can live in a README.
    """
    machine = GraphMachine(model=_Drawn(), states=table.states, transitions=table.transitions,
                           initial=table.initial, auto_transitions=False, model_attribute="status",
                           graph_engine="mermaid", show_conditions=True, title=table.entity)
    drawn = machine.get_graph().draw(None)
    lines = drawn[drawn.index("stateDiagram-v2"):].splitlines()
    kept = [line.rstrip() for line in lines if not line.lstrip().startswith(("classDef ", "Class ", "class "))]
    text = "\n".join(line for line, previous in zip(kept, [None, *kept]) if line or previous)
    return text.strip() + "\n"


def register(app: Flask) -> None:
    @app.cli.command("state-diagram")
    @click.argument("machine", type=click.Choice(sorted(MACHINES)))
    def state_diagram_command(machine: str):
        """Print the cart, payment or refund state machine as a Mermaid stateDiagram-v2."""
        click.echo(mermaid_diagram(MACHINES[machine]), nl=False)
