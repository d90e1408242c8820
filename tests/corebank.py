"""Write a generated bank as the export of the fictional "Moravia Savings Bank" core system.

The layout is the one ``examples/corebank/mapping.yaml`` reads: ``;``-separated cp1250 files,
decimal commas, YYMMDD and DD.MM.YYYY dates, the bank's own column names, product codes and
district codes, unsigned amounts with a debit/credit flag, extra columns nobody asked for, no
interaction log, no monthly arrears file, no channels, no consent, and a register of defaulted
loans (the bank's own outcome: a credit customer's default day, from the synthetic truth).

``python -m tests.corebank OUT [--customers N --months M]`` writes a sample (the one under
``examples/corebank/export`` was written with ``--customers 50 --months 10 --seed 10``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

ENCODING = "cp1250"
DISTRICTS = {"north": "D01", "south": "D02", "east": "D03", "west": "D04", "central": "D05"}
PRODUCT_CODES = {
    "current": "CUR01",
    "savings": "SAV01",
    "term_deposit": "TDP01",
    "credit_card": "CRD01",
    "personal_loan": "LON01",
    "mortgage": "MTG01",
    "wealth_management": "INV01",
    "insurance": "INS01",
}
TXN_CODES = {
    "salary": "SAL",
    "card_spend": "POS",
    "transfer_in": "TRI",
    "transfer_out": "TRO",
    "atm": "ATM",
    "bill_payment": "BIL",
    "loan_repayment": "RPY",
    "interest": "INT",
    "fee": "FEE",
    "penalty_interest": "PEN",
}


def _yymmdd(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.strftime("%y%m%d").fillna("")


def _comma(values: pd.Series) -> pd.Series:
    """Decimal commas, two decimals (``-1234,50``)."""
    return values.map(lambda v: f"{v:.2f}".replace(".", ","))


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, sep=";", index=False, encoding=ENCODING)


def write_export(data_dir: Path, out: Path) -> Path:
    """Convert the generated bank in ``data_dir`` (``raw/`` + ``oracle/``) into the export layout
    in ``out``; returns ``out``."""
    raw = Path(data_dir) / "raw"
    out.mkdir(parents=True, exist_ok=True)
    customers = pd.read_parquet(raw / "customers")
    _write(
        pd.DataFrame(
            {
                "CLIENT_NO": customers["customer_id"],
                "NAME": "Client " + customers["customer_id"].astype(str),  # not needed: ignored
                "BIRTH_DT": pd.to_datetime(customers["birth_date"]).dt.strftime("%d.%m.%Y"),
                "SEX": customers["gender"].map({"F": "Z", "M": "M", "X": "M"}),
                "DISTRICT": customers["region"].map(DISTRICTS),
                "BRANCH": customers["branch_id"],
                "CLIENT_SINCE": _yymmdd(customers["join_date"]),
                "ADVISOR": customers["manager_id"].astype("Int64"),
                "ZIP": "60200",
            }
        ),
        out / "CLIENTS.CSV",
    )
    accounts = pd.read_parquet(raw / "accounts")
    _write(
        pd.DataFrame(
            {
                "ACC_NO": accounts["account_id"],
                "CLIENT_NO": accounts["customer_id"],
                "PRODUCT_CODE": accounts["product"].map(PRODUCT_CODES),
                "OPENED": _yymmdd(accounts["open_date"]),
                "CLOSED": _yymmdd(accounts["close_date"]),
                "MATURES": _yymmdd(accounts["maturity_date"]),
                "LIMIT": _comma(accounts["limit_amount"]),
                "CURRENCY": "CZK",
            }
        ),
        out / "ACCOUNTS.CSV",
    )
    tx = pd.read_parquet(raw / "transactions")
    _write(
        pd.DataFrame(
            {
                "POST_ID": tx["transaction_id"],
                "ACC_NO": tx["account_id"],
                "BOOKED": pd.to_datetime(tx["ts"]).dt.strftime("%y%m%d %H:%M"),
                "AMOUNT": _comma(tx["amount"].abs()),
                "DC": (tx["amount"] < 0).map({True: "D", False: "C"}),
                "BALANCE": _comma(tx["balance_after"]),
                "TXN_CODE": tx["type"].astype(str).map(TXN_CODES),
                "TERMINAL": "",
            }
        ),
        out / "POSTINGS.CSV",
    )
    _write(_defaults(data_dir, accounts), out / "DEFAULTS.CSV")
    return out


def _defaults(data_dir: Path, accounts: pd.DataFrame) -> pd.DataFrame:
    """The bank's default register: each default of the synthetic truth, on the customer's credit
    account opened last before it (the loan the bank would book it against)."""
    events = pd.read_parquet(
        Path(data_dir) / "oracle" / "events", filters=[("outcome", "==", "default")]
    )
    credit = accounts[accounts["product"].isin(["credit_card", "personal_loan", "mortgage"])]
    joined = events.merge(credit[["customer_id", "account_id", "open_date"]], on="customer_id")
    joined = joined[pd.to_datetime(joined["open_date"]) <= pd.to_datetime(joined["event_date"])]
    booked = joined.sort_values("open_date").groupby(["customer_id", "event_date"]).tail(1)
    booked = booked.sort_values(["event_date", "customer_id"]).reset_index(drop=True)
    return pd.DataFrame(
        {
            "CASE_NO": range(1, len(booked) + 1),
            "CLIENT_NO": booked["customer_id"],
            "ACC_NO": booked["account_id"],
            "DEFAULT_DATE": _yymmdd(booked["event_date"]),
            "REASON": "90 DPD",
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--months", type=int, default=10)
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    import tempfile

    from crmscore.synthetic import BankConfig, generate_bank

    with tempfile.TemporaryDirectory() as tmp:
        config = BankConfig(customers=args.customers, months=args.months, seed=args.seed)
        generate_bank(config, Path(tmp), progress=False)
        print(write_export(Path(tmp), args.out))


if __name__ == "__main__":
    main()
