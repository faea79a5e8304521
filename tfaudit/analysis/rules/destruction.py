"""Deletes, replaces and forgets, rated higher for stateful types."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from functools import lru_cache

from tfaudit.analysis.rules._values import Hit
from tfaudit.parse.plan import ResourceChange

STATEFUL_PATTERNS: tuple[str, ...] = (
    "aws_db_instance", "aws_rds_cluster", "aws_rds_global_cluster", "aws_docdb_cluster", "aws_neptune_cluster",
    "aws_redshift_cluster", "aws_redshiftserverless_namespace", "aws_dynamodb_table", "aws_dynamodb_global_table",
    "aws_elasticache_cluster", "aws_elasticache_replication_group", "aws_memorydb_cluster",
    "aws_opensearch_domain", "aws_elasticsearch_domain", "aws_s3_bucket", "aws_s3_directory_bucket",
    "aws_ebs_volume", "aws_ebs_snapshot", "aws_efs_file_system", "aws_fsx_*", "aws_backup_vault",
    "aws_glacier_vault", "aws_kms_key", "aws_kms_replica_key", "aws_route53_zone", "aws_cloudwatch_log_group",
    "aws_secretsmanager_secret", "aws_ecr_repository", "aws_kinesis_stream", "aws_sqs_queue", "aws_msk_cluster",
    "aws_timestreamwrite_database", "aws_qldb_ledger", "aws_keyspaces_table",
    "google_sql_database_instance", "google_sql_database", "google_storage_bucket", "google_compute_disk",
    "google_kms_crypto_key", "google_kms_key_ring", "google_dns_managed_zone", "google_bigquery_dataset",
    "google_bigquery_table", "google_spanner_instance", "google_spanner_database", "google_filestore_instance",
    "google_bigtable_instance", "google_redis_instance", "google_alloydb_cluster", "google_secret_manager_secret",
    "azurerm_storage_account", "azurerm_storage_container", "azurerm_managed_disk", "azurerm_key_vault",
    "azurerm_key_vault_key", "azurerm_dns_zone", "azurerm_private_dns_zone", "azurerm_cosmosdb_account",
    "azurerm_mssql_server", "azurerm_mssql_database", "azurerm_postgresql_*server", "azurerm_mysql_*server",
    "azurerm_redis_cache", "azurerm_log_analytics_workspace",
)
_STATEFUL_RE = re.compile("|".join(fnmatch.translate(p) for p in STATEFUL_PATTERNS))


@lru_cache(maxsize=4096)
def is_stateful(rtype: str) -> bool:
    return _STATEFUL_RE.match(rtype) is not None


def check_destruction(ch: ResourceChange) -> Iterator[Hit]:
    acts = ch.actions
    if len(acts) == 2 and acts != ("create", "forget"):
        cbd = acts == ("create", "delete")
        order = "create_before_destroy: create, then delete" if cbd else "delete, then create"
        reason = f"; {ch.action_reason}" if ch.action_reason else ""
        if is_stateful(ch.type):
            yield "destroy.stateful-replace", f"replaced ({order}{reason}): the new {ch.type} starts without the old one's data"
        else:
            yield ("destroy.replace-cbd" if cbd else "destroy.replace"), f"replaced ({order}{reason})"
    elif acts == ("delete",):
        reason = f" ({ch.action_reason})" if ch.action_reason else ""
        if is_stateful(ch.type):
            yield "destroy.stateful-delete", f"{ch.type} deleted{reason}, with the data it holds"
        else:
            yield "destroy.delete", f"deleted{reason}"
    elif acts in (("forget",), ("create", "forget")):
        yield "destroy.forget", "removed from the state but left running (forget)"
