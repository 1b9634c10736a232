"""The baseline for HTTP reads: a bare FastAPI JSON endpoint, served like payport."""

from fastapi import FastAPI

app = FastAPI()
PAYMENT = {
    "paymentId": "3f1c2a9e-0000-4000-8000-000000000000",
    "orderId": "order-1",
    "customerId": "user_alice",
    "runnerId": None,
    "amount": 25.0,
    "currency": "usd",
    "status": "AUTHORIZED",
    "description": "Campus delivery",
    "paymentIntentId": "pi_123",
    "transferId": None,
    "createdAt": "2026-11-23T10:00:00Z",
    "updatedAt": "2026-11-23T10:00:00Z",
}


@app.get("/payment/{order_id}/status")
async def status(order_id: str) -> dict[str, object]:
    return {"success": True, "payment": PAYMENT | {"orderId": order_id}}
