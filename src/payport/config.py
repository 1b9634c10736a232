"""Settings, read once from the environment and `.env`, validated at start-up."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from payport.money import is_known_currency

SQLITE_DEFAULT_URL = "sqlite:///./payport.db"


class ProviderName(StrEnum):
    SANDBOX = "sandbox"
    STRIPE = "stripe"


class TransportName(StrEnum):
    LOCAL = "local"
    KAFKA = "kafka"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every knob payport has; the names are part of the product (see README)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str = Field(default=SQLITE_DEFAULT_URL, alias="DATABASE_URL")
    env: Environment = Field(default=Environment.DEVELOPMENT, alias="PAYPORT_ENV")
    provider: ProviderName = Field(default=ProviderName.SANDBOX, alias="PAYPORT_PROVIDER")
    transport: TransportName = Field(default=TransportName.LOCAL, alias="PAYPORT_TRANSPORT")
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    commands_topic: str = Field(default="payment_commands", alias="PAYMENT_COMMANDS_TOPIC")
    events_topic: str = Field(default="payment_events", alias="PAYMENT_EVENTS_TOPIC")
    consumer_group: str = Field(default="payment-service-group", alias="PAYMENT_CONSUMER_GROUP")
    dead_letter_topic: str | None = Field(default=None, alias="PAYMENT_DLQ_TOPIC")
    kafka_create_topics: bool = Field(default=True, alias="PAYPORT_KAFKA_CREATE_TOPICS")
    kafka_partitions: int = Field(default=8, ge=1, le=10_000, alias="PAYPORT_KAFKA_PARTITIONS")
    kafka_replication: int = Field(default=1, ge=1, le=100, alias="PAYPORT_KAFKA_REPLICATION")
    kafka_session_timeout_ms: int = Field(
        default=10_000, ge=500, le=300_000, alias="PAYPORT_KAFKA_SESSION_TIMEOUT_MS"
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=10, ge=0, le=10_000, alias="PAYPORT_KAFKA_FETCH_MAX_WAIT_MS"
    )
    stripe_secret_key: SecretStr | None = Field(default=None, alias="STRIPE_SECRET_KEY")
    stripe_webhook_secret: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, alias="STRIPE_WEBHOOK_SECRET"
    )
    stripe_api_base: str | None = Field(default=None, alias="STRIPE_API_BASE")
    stripe_timeout_s: float = Field(default=30.0, gt=0, le=300, alias="PAYPORT_STRIPE_TIMEOUT_S")
    # payport retries transient failures itself (providers/errors.py); the SDK's own
    # retries multiply with those, so it gets one for connection blips only.
    stripe_max_network_retries: int = Field(
        default=1, ge=0, le=10, alias="PAYPORT_STRIPE_MAX_NETWORK_RETRIES"
    )
    default_currency: str = Field(default="usd", alias="DEFAULT_CURRENCY")
    platform_fee_bps: int = Field(default=0, ge=0, le=10_000, alias="PLATFORM_FEE_BPS")
    host: str = Field(default="127.0.0.1", alias="HOST")
    port: int = Field(default=3003, ge=1, le=65_535, alias="PORT")
    public_url: str | None = Field(default=None, alias="PAYPORT_PUBLIC_URL")
    max_in_flight: int = Field(default=256, ge=1, le=100_000, alias="PAYPORT_MAX_IN_FLIGHT")
    sandbox_latency_ms: int = Field(default=0, ge=0, le=60_000, alias="PAYPORT_SANDBOX_LATENCY_MS")
    sandbox_failure_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, alias="PAYPORT_SANDBOX_FAILURE_RATE"
    )
    sandbox_webhook_url: str | None = Field(default=None, alias="PAYPORT_SANDBOX_WEBHOOK_URL")
    webhook_tolerance_s: int = Field(default=300, ge=1, alias="PAYPORT_WEBHOOK_TOLERANCE")
    # Seconds between reconcile runs in the worker (payments untouched that long); 0: never.
    reconcile_interval_s: int = Field(default=300, ge=0, alias="PAYPORT_RECONCILE_INTERVAL")
    # Billing: days after a renewal's first failed charge on which it is retried, what
    # happens to the subscription when the last retry fails, and the renewal loop's period.
    billing_retry_days: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [1, 3, 5], alias="BILLING_DUNNING_RETRY_DAYS"
    )
    billing_final_action: Literal["cancel", "unpaid"] = Field(
        default="cancel", alias="BILLING_DUNNING_FINAL_ACTION"
    )
    billing_interval_s: int = Field(default=60, ge=0, alias="PAYPORT_BILLING_INTERVAL")
    # Refunds above this many minor units wait for approval before they can be processed.
    refund_approval_threshold: int = Field(default=10_000, ge=0, alias="REFUND_APPROVAL_THRESHOLD")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, alias="PAYPORT_MAX_BODY_BYTES")
    log_level: str = Field(default="INFO", alias="PAYPORT_LOG_LEVEL")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL", alias="PAYPORT_SQLITE_SYNCHRONOUS"
    )

    # Checkout (seed 004): the shop's order and inventory services, user and service tokens.
    order_service_url: str = Field(default="http://127.0.0.1:7000", alias="ORDER_SERVICE_URL")
    inventory_service_url: str = Field(
        default="http://127.0.0.1:6000", alias="INVENTORY_SERVICE_URL"
    )
    order_path: str = Field(default="/internal/orders/{orderId}", alias="ORDER_SERVICE_ORDER_PATH")
    order_status_path: str = Field(
        default="/internal/orders/{orderId}/status", alias="ORDER_SERVICE_STATUS_PATH"
    )
    inventory_release_path: str = Field(
        default="/internal/inventory/release", alias="INVENTORY_RELEASE_PATH"
    )
    internal_service_secret: SecretStr | None = Field(default=None, alias="INTERNAL_SERVICE_SECRET")
    jwt_secret: SecretStr | None = Field(default=None, alias="JWT_SECRET")
    jwt_public_key: str | None = Field(default=None, alias="JWT_PUBLIC_KEY")
    checkout_success_url: str | None = Field(default=None, alias="CHECKOUT_SUCCESS_URL")
    checkout_cancel_url: str | None = Field(default=None, alias="CHECKOUT_CANCEL_URL")
    checkout_session_ttl_s: int = Field(
        default=1800, ge=1800, le=86_400, alias="PAYPORT_CHECKOUT_SESSION_TTL_S"
    )
    order_call_backoff_s: float = Field(
        default=1.0, gt=0, le=3600, alias="PAYPORT_ORDER_CALL_BACKOFF_S"
    )
    order_call_max_backoff_s: float = Field(
        default=300.0, gt=0, le=86_400, alias="PAYPORT_ORDER_CALL_MAX_BACKOFF_S"
    )
    order_call_max_attempts: int = Field(
        default=30, ge=1, le=10_000, alias="PAYPORT_ORDER_CALL_MAX_ATTEMPTS"
    )
    order_call_timeout_s: float = Field(
        default=10.0, gt=0, le=300, alias="PAYPORT_ORDER_CALL_TIMEOUT_S"
    )
    checkout_sweep_interval_s: float = Field(
        default=30.0, gt=0, le=3600, alias="PAYPORT_CHECKOUT_SWEEP_INTERVAL_S"
    )

    @field_validator("default_currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        code = value.strip().lower()
        if not is_known_currency(code):
            raise ValueError(f"unknown ISO 4217 currency {value!r}")
        return code

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgres")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("stripe_webhook_secret", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        """Several comma-separated secrets are accepted so a secret can be rolled."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("billing_retry_days", mode="before")
    @classmethod
    def _split_retry_days(cls, value: object) -> object:
        """`1,3,5`: increasing whole days; an empty value means no retries."""
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("billing_retry_days")
    @classmethod
    def _increasing_days(cls, value: list[int]) -> list[int]:
        if any(day < 1 for day in value) or value != sorted(set(value)):
            raise ValueError("must be increasing whole days, e.g. 1,3,5")
        return value

    @property
    def dlq_topic(self) -> str:
        return self.dead_letter_topic or f"{self.commands_topic}.dlq"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def check_available(self) -> None:
        """Refuse settings this build cannot honour, rather than quietly ignore them."""
        if self.provider is ProviderName.STRIPE and self.stripe_secret_key is None:
            raise ConfigError("STRIPE_SECRET_KEY", "is required when PAYPORT_PROVIDER=stripe")

    def check_production(self) -> None:
        """Refuse configurations that would be unsafe with real money."""
        if self.env is not Environment.PRODUCTION:
            return
        if self.provider is ProviderName.SANDBOX:
            raise ConfigError("PAYPORT_PROVIDER", "sandbox cannot run with PAYPORT_ENV=production")
        key = self.stripe_secret_key.get_secret_value() if self.stripe_secret_key else ""
        if not key:
            raise ConfigError("STRIPE_SECRET_KEY", "is required in production")
        if key.startswith(("sk_test_", "rk_test_")):
            raise ConfigError("STRIPE_SECRET_KEY", "is a test key; production needs a live key")
        if not self.stripe_webhook_secret:
            raise ConfigError("STRIPE_WEBHOOK_SECRET", "is required in production")


class ConfigError(Exception):
    """A configuration problem, reported as one line naming the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's report into one line that names the variable."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]) if first["loc"] else "configuration"
        raise ConfigError(variable.upper(), first["msg"]) from None
    settings.check_production()
    settings.check_available()
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
