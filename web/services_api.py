"""The service catalogue."""

from flask import Blueprint

from persistence import catalogue
from web.auth import current_user, require_token
from web.clock import now
from web.errors import ApiError
from web.requests import parse
from web.schemas import NewService
from web.responses import service_json

bp = Blueprint("services", __name__, url_prefix="/api/services")
admin_bp = require_token(Blueprint("services_admin", __name__, url_prefix="/api/services"))


@bp.get("/")
def list_services():
    """List every bookable service; no token needed."""
    return [service_json(s) for s in catalogue.list_services()]


@admin_bp.post("/")
def create_service():
    """Add a service to the catalogue (admins only)."""
    if not current_user().is_admin:
        raise ApiError(403, "Forbidden", "Only an administrator can add services.")
    body = parse(NewService)
    return service_json(catalogue.create_service(body.name, body.price, body.duration_minutes, now=now())), 201
