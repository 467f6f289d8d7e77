"""The web console at ``/console`` and the account API it uses: one router for ``api.app`` to include."""

from __future__ import annotations

from fastapi import APIRouter

from smsgate.api.console import account, handsets, routes

router = APIRouter()
router.include_router(routes.router)
router.include_router(handsets.router)
router.include_router(account.router)
