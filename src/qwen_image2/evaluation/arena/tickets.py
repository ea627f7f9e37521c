"""Battles as signed tickets: a page view writes nothing, and only a vote stores its battle.

A ticket is `BATTLE.PROMPT.MODELS.ISSUED.MAC`: a random battle id, the prompt, how many models had
answered it when it was drawn, the issue time, and an HMAC over those and the voter's token. The two
images are derived from the HMAC of the battle id, so the ticket names no generation (generation ids
are sequential per import and would say which model made an image), and a client cannot choose them.
The secret lives in the store, so every worker over one database signs and checks alike.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qwen_image2.evaluation.arena.errors import ArenaError
from qwen_image2.evaluation.arena.storage import Secret

SECRET_NAME = "battle-tickets"
# A tab left open over lunch may still vote; a ticket hoarded for longer may not.
TICKET_LIFETIME_S = 24 * 3600
MAC_HEX = 32  # 128 bits of HMAC-SHA256


@dataclass(frozen=True)
class Ticket:
    battle_id: str
    prompt_id: int
    models: int  # the prompt's first `models` generations (by id) are the ones the pair is drawn from
    issued: int  # Unix seconds


class Tickets:
    """Signs and checks tickets, and hashes client addresses, with one server secret."""

    def __init__(self, secret: bytes):
        self._secret = secret

    def _mac(self, purpose: str, text: str) -> str:
        return hmac.new(self._secret, f"{purpose}\n{text}".encode(), hashlib.sha256).hexdigest()

    def client_hash(self, address: str) -> str:
        """Keyed, so a leaked vote table cannot be reversed by hashing every IPv4 address."""
        return self._mac("client", address)

    def sign(self, ticket: Ticket, voter_token: str) -> str:
        body = f"{ticket.battle_id}.{ticket.prompt_id}.{ticket.models}.{ticket.issued}"
        return f"{body}.{self._mac('ticket', body + '.' + voter_token)[:MAC_HEX]}"

    def check(self, text: str, voter_token: str, now: int) -> Ticket:
        """The ticket `text` names, if it was issued by this server to `voter_token` and is not too old."""
        try:
            battle_id, prompt_id, models, issued, mac = text.split(".")
            ticket = Ticket(battle_id, int(prompt_id), int(models), int(issued))
        except ValueError:
            raise ArenaError(404, "unknown battle: load a new one from the arena page") from None
        body = text.rpartition(".")[0]
        if not hmac.compare_digest(mac, self._mac("ticket", body + "." + voter_token)[:MAC_HEX]):
            raise ArenaError(403, "this battle was not issued to you (or was altered): load a new one")
        if now - ticket.issued > TICKET_LIFETIME_S:
            raise ArenaError(410, "this battle has expired: load a new one")
        return ticket

    def pair(self, ticket: Ticket) -> tuple[int, int]:
        """Positions (left, right) of the two images among the prompt's first `ticket.models` generations."""
        digest = hmac.new(self._secret, f"pair\n{ticket.battle_id}".encode(), hashlib.sha256).digest()
        left = int.from_bytes(digest[:8]) % ticket.models
        right = int.from_bytes(digest[8:16]) % (ticket.models - 1)
        return left, right + (right >= left)


def load_tickets(session: Session) -> Tickets:
    """The store's ticket secret, made on first start; a worker that loses the race reads the winner's."""
    found = session.scalar(select(Secret.value).where(Secret.name == SECRET_NAME))
    if found is None:
        try:
            with session.begin_nested():
                session.add(Secret(name=SECRET_NAME, value=secrets.token_hex(32)))
        except IntegrityError:
            pass
        found = session.scalar(select(Secret.value).where(Secret.name == SECRET_NAME))
    return Tickets(bytes.fromhex(found))
