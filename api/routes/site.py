"""The site, its buildings and tenants (departments)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Reader, SiteDep
from api.routes.meters import ERRORS
from api.schemas import BuildingOut, SiteOut, TenantOut
from core.config import Building, SiteConfig, Tenant
from core.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["site"])


@router.get("/site", response_model=SiteOut, responses=ERRORS)
def get_site_info(_who: Reader, site: SiteDep) -> SiteOut:
    s = site.site
    return SiteOut(
        id=s.id,
        name=s.name,
        name_en=s.name_en,
        timezone=s.timezone,
        latitude=s.latitude,
        longitude=s.longitude,
        floor_area_m2=sum(b.floor_area_m2 for b in site.buildings),
        buildings=len(site.buildings),
        tenants=len(site.tenants),
        meters=len(site.meters),
    )


def _building(b: Building) -> BuildingOut:
    return BuildingOut(
        id=b.id, name=b.name, name_en=b.name_en, floor_area_m2=b.floor_area_m2, floors=b.floors
    )


def _tenant(site: SiteConfig, t: Tenant) -> TenantOut:
    return TenantOut(
        id=t.id,
        name=t.name,
        name_en=t.name_en,
        building=t.building,
        floor_area_m2=t.floor_area_m2,
        staff=t.staff,
        kind=t.kind,
        meters=[m.id for m in site.meters if m.tenant == t.id],
    )


@router.get("/buildings", response_model=list[BuildingOut], responses=ERRORS)
def list_buildings(_who: Reader, site: SiteDep) -> list[BuildingOut]:
    return [_building(b) for b in site.buildings]


@router.get("/buildings/{building_id}", response_model=BuildingOut, responses=ERRORS)
def get_building(_who: Reader, site: SiteDep, building_id: str) -> BuildingOut:
    for b in site.buildings:
        if b.id == building_id:
            return _building(b)
    raise NotFound(f"no building {building_id!r}")


@router.get("/tenants", response_model=list[TenantOut], responses=ERRORS)
def list_tenants(_who: Reader, site: SiteDep) -> list[TenantOut]:
    return [_tenant(site, t) for t in site.tenants]


@router.get("/tenants/{tenant_id}", response_model=TenantOut, responses=ERRORS)
def get_tenant(_who: Reader, site: SiteDep, tenant_id: str) -> TenantOut:
    for t in site.tenants:
        if t.id == tenant_id:
            return _tenant(site, t)
    raise NotFound(f"no tenant {tenant_id!r}")
