"""The anchor ``bench/load.py`` times reads against: a plain FastAPI app under uvicorn that
answers ``GET /api/v1/contributions?limit=N`` with the same rows the hub's route returns,
read with the same SQLAlchemy statement from the same database, and nothing else (no hub,
no state, no middleware). ``LOAD_ANCHOR_DATABASE`` names the database.

    python -m uvicorn load_anchor:app --app-dir bench --port 8001
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from sqlalchemy import create_engine, select

from commonweal.store.schema import contributions

engine = create_engine(os.environ["LOAD_ANCHOR_DATABASE"])
app = FastAPI()


@app.get("/api/v1/contributions")
def list_contributions(limit: int = 1000) -> dict[str, Any]:
    stmt = select(contributions).order_by(contributions.c.batch_index, contributions.c.id)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt.limit(limit))]
    return {"contributions": rows}
