"""What tests share: databases to run on, communities to test against, the command line
and server as processes, and a clock tests move by hand. Test modules import from here
(and take conftest's fixtures by name), never from each other."""

from tests.kit.clock import Clock
from tests.kit.commands import cw, cwj, free_port, origin_of, start_server
from tests.kit.communities import (
    MEMBERS,
    accept_all,
    community,
    digit_items,
    make_hub,
    png,
    seeded_salts,
    text_items,
)
from tests.kit.databases import (
    DATABASES,
    PG_URL,
    Databases,
    copied_hub,
    database,
    hub_database,
)
from tests.kit.races import at_once

__all__ = [
    "DATABASES",
    "MEMBERS",
    "PG_URL",
    "Clock",
    "Databases",
    "accept_all",
    "at_once",
    "community",
    "copied_hub",
    "cw",
    "cwj",
    "database",
    "digit_items",
    "free_port",
    "hub_database",
    "make_hub",
    "origin_of",
    "png",
    "seeded_salts",
    "start_server",
    "text_items",
]
