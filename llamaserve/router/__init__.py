"""Router mode: many models behind one server, one child llamaserve process per loaded model."""

from llamaserve.router.app import create_router_app

__all__ = ["create_router_app"]
