"""InitProducerId v3 for aiokafka, so its idempotent producer works on brokers that need it.

aiokafka only speaks version 0 of InitProducerId. Tansu (the Kafka-protocol
broker payport is tested against) reads the producer id and epoch that only
version 3 and later carry, and answers version 0 with UNKNOWN_SERVER_ERROR.
Version 3 with producer id and epoch -1 means exactly what version 0 means
("give me a new producer id"), and Apache Kafka has accepted it since 2.5, so
the request below picks the highest version both sides know. Nothing else in
aiokafka changes.
"""

from __future__ import annotations

from typing import Any

import aiokafka.producer.sender as _sender
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.transaction import InitProducerIdRequest_v0
from aiokafka.protocol.types import CompactString, Int16, Int32, Int64, Schema, TaggedFields

_NEW_PRODUCER = -1


class InitProducerIdResponseV3(Response):  # type: ignore[misc]
    API_KEY = 22
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("tags", TaggedFields),
    )


class InitProducerIdRequestV3(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 22
    API_VERSION = 3
    RESPONSE_TYPE = InitProducerIdResponseV3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("transaction_timeout_ms", Int32),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("tags", TaggedFields),
    )


class InitProducerIdRequest(Request[InitProducerIdRequest_v0 | InitProducerIdRequestV3]):  # type: ignore[misc]
    """Drop-in for aiokafka's request class with the same constructor."""

    API_KEY = 22

    def __init__(self, transactional_id: str | None, transaction_timeout_ms: int) -> None:
        self._transactional_id = transactional_id
        self._timeout_ms = transaction_timeout_ms

    def build(self, request_struct_class: type[Any]) -> Any:
        if request_struct_class.API_VERSION >= 3:
            return request_struct_class(
                self._transactional_id, self._timeout_ms, _NEW_PRODUCER, _NEW_PRODUCER, {}
            )
        return request_struct_class(self._transactional_id, self._timeout_ms)


def install() -> None:
    """Make aiokafka's sender use the request above (idempotent; called on import)."""
    _sender.InitProducerIdRequest = InitProducerIdRequest


install()
