"""{% instagram_banner workspace can_manage %}: the banner every workspace page shows while the
workspace's Instagram connection is broken (automated messages are paused until a reconnect)."""

from django import template

from contacts import instagram

register = template.Library()


@register.inclusion_tag("contacts/_instagram_banner.html")
def instagram_banner(workspace, can_manage=False) -> dict:
    connection = instagram.connection_for(workspace=workspace) if workspace else None
    return {"workspace": workspace, "can_manage": can_manage,
            "broken": connection is not None and connection.is_broken, "connection": connection}
