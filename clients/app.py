"""The fedcurate ClientApp: one app for data owners and the curator.

Register with ``[tool.flwr.app.components] clientapp = "clients.app:app"``. A
node's role (``owner`` or ``curator``) comes from its node config; each handler
refuses requests meant for the other role.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

from clients import curator, owner
from clients.site import Site, resolve_site
from fedcurate.protocol import ROLE_CURATOR, ROLE_OWNER, NodeDescription

app = ClientApp()

Handler = Callable[[Site, RecordDict, Context], RecordDict]


def _serve(role: str, handler: Handler, message: Message, context: Context) -> Message:
    site = resolve_site(context)
    if site.role != role:
        raise PermissionError(
            f"{site.name} is a {site.role} node; '{message.metadata.message_type}' is for a {role}"
        )
    return Message(handler(site, message.content, context), reply_to=message)


@app.query("describe")
def describe(message: Message, context: Context) -> Message:
    """Tell the server this node's role, name and example count."""
    site = resolve_site(context)
    examples = len(site.owner_data()[0]) if site.role == ROLE_OWNER else 0
    return Message(NodeDescription(site.role, site.name, examples).to_content(), reply_to=message)


@app.train()
def train(message: Message, context: Context) -> Message:
    """Owner: train locally on the received global model."""
    return _serve(ROLE_OWNER, owner.train, message, context)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    """Owner: evaluate the received global model on local test data."""
    return _serve(ROLE_OWNER, lambda s, c, _: owner.evaluate_global(s, c), message, context)


@app.query("public_context")
def public_context(message: Message, context: Context) -> Message:
    """Curator: hand out the public half of the CKKS key."""
    return _serve(ROLE_CURATOR, lambda s, _c, _x: curator.public_context(s), message, context)


@app.query("validation_gradient")
def validation_gradient(message: Message, context: Context) -> Message:
    """Curator: the validation-loss gradient at the global model."""
    return _serve(ROLE_CURATOR, curator.validation_gradient, message, context)


@app.query("assess_scores")
def assess_scores(message: Message, context: Context) -> Message:
    """Curator: decrypt masked scores, decide weights and exclusions."""
    return _serve(ROLE_CURATOR, curator.assess_scores, message, context)


@app.query("decrypt_aggregate")
def decrypt_aggregate(message: Message, context: Context) -> Message:
    """Curator: decrypt an aggregate of several owners' updates."""
    return _serve(ROLE_CURATOR, lambda s, c, _: curator.decrypt_aggregate(s, c), message, context)


@app.query("validate")
def validate(message: Message, context: Context) -> Message:
    """Curator: evaluate a global model on the validation split."""
    return _serve(ROLE_CURATOR, lambda s, c, _: curator.validate(s, c), message, context)
