"""Who the key belongs to: its role and the contracts it may see (the page asks this first,
so that a vendor's page never calls a route that would answer 403). No secret: the key id
(already in the access log), never the key or its hash."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import AnyKey, SiteDep
from api.keys import Role
from api.routes.meters import ERRORS

router = APIRouter(prefix="/api/v1", tags=["auth"])


class ContractRef(BaseModel):
    id: str
    name: str


class WhoAmIOut(BaseModel):
    key_id: str = Field(description="the key's id (the part after `epc_`), not the secret")
    name: str = Field(description="the label given at `epcmon keys create --name`")
    role: Role
    building: bool = Field(
        description="whether the key may read the building's data (meters, tenants, "
        "consumption, operations): every role but `vendor`"
    )
    contracts: list[ContractRef] = Field(description="the contracts this key may see")
    sites: list[str] = Field(
        default_factory=list,
        description="in a portfolio: the sites this key is scoped to (empty: every site)",
    )


@router.get("/whoami", response_model=WhoAmIOut, responses=ERRORS)
def whoami(who: AnyKey, site: SiteDep) -> WhoAmIOut:
    return WhoAmIOut(
        key_id=who.key_id,
        name=who.name,
        role=who.role,
        building=who.role is not Role.VENDOR,
        contracts=[
            ContractRef(id=c.id, name=c.name) for c in site.contracts if who.may_see_contract(c.id)
        ],
        sites=sorted(who.sites),
    )
