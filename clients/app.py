"""The fedcurate ClientApp: one app for data owners and the curator.

Register with ``[tool.flwr.app.components] clientapp = "clients.app:app"``.
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from clients import owner
from clients.site import resolve_site
from fedcurate.protocol import NodeDescription

app = ClientApp()


@app.query("describe")
def describe(message: Message, context: Context) -> Message:
    """Tell the server this node's role and name."""
    site = resolve_site(context)
    return Message(NodeDescription(site.role, site.name).to_content(), reply_to=message)


@app.train()
def train(message: Message, context: Context) -> Message:
    """Train locally on the received global model."""
    site = resolve_site(context)
    return Message(owner.train(site, message.content, context), reply_to=message)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    """Evaluate the received global model on local test data."""
    site = resolve_site(context)
    return Message(owner.evaluate_global(site, message.content), reply_to=message)
