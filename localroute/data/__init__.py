"""The query and outcome tables every job shares: schemas, loaders for public data, splits."""

from localroute.data.schema import OUTCOME_SCHEMA, QUERY_SCHEMA

__all__ = ["OUTCOME_SCHEMA", "QUERY_SCHEMA"]
