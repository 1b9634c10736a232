"""One-off invoices on top of billing's invoices: creation with line items, lists, PDFs."""
