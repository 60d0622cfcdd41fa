"""`status_page:` in the probes file: what the page at /status calls itself and how it groups."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StatusPageSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field("Status", min_length=1, max_length=80)  # the heading and the tab's name
    environment: str | None = Field(None, min_length=1, max_length=40)  # "production", beside the title
    # "tag": a section per tag (a probe under its first one, in the order tags first appear in
    # the file; untagged probes last, under "Other"); "none": one list
    group_by: Literal["tag", "none"] = "none"
