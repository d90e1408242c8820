"""Reason codes fit for adverse-action notices: a stable code and a short text per feature family.

A notice that declines credit (or a risk officer explaining a PD) states the *principal reasons*:
a handful of stable codes with plain texts, the same for every customer, never a feature's
internal name. The families below are declared by hand, as data: which features mean "payments
past due", which mean "use of available credit", and the sentence a customer can read. Codes
never change meaning; a new feature joins an existing family or gets a new code (a test checks
that every model input belongs to exactly one family).

A family's contribution is the sum of its features' TreeSHAP contributions (they are additive),
so two delinquency features make one delinquency reason, not two.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from functools import cache


@dataclass(frozen=True)
class ReasonFamily:
    """A stable ``code``, the ``text`` a notice prints, and the features (``fnmatch`` patterns)
    whose contributions it sums."""

    code: str
    text: str
    features: tuple[str, ...]


#: Every model input's family. Prefixes: C credit file, T transactions, P products,
#: I interactions, A customer attributes. Order matters only for lookups: first match wins.
REASON_FAMILIES: tuple[ReasonFamily, ...] = (
    ReasonFamily("C01", "Payments past due on credit accounts",
                 ("credit_current_dpd", "credit_worst_dpd_*")),
    ReasonFamily("C02", "History of late payments",
                 ("credit_months_delinquent_12m", "credit_months_30dpd_12m",
                  "credit_months_since_delinquency")),
    ReasonFamily("C03", "Use of available credit",
                 ("credit_utilisation", "credit_card_utilisation", "credit_utilisation_change_*")),
    ReasonFamily("C04", "Amount owed on credit accounts",
                 ("credit_balance", "credit_loan_balance", "credit_balance_change_*",
                  "credit_limit")),
    ReasonFamily("C05", "Debt repayments relative to income",
                 ("txn_debt_service_ratio_*", "txn_repayment_balance_ratio_*")),
    ReasonFamily("C06", "Number of credit accounts and new credit",
                 ("credit_n_accounts", "prod_credit_opened_*")),
    ReasonFamily("C07", "Going beyond the arranged limit", ("txn_overlimit_*",)),
    ReasonFamily("C08", "Penalty interest and arrears charges", ("txn_penalty_*",)),
    ReasonFamily("T01", "Regularity of salary income", ("txn_salary_*", "txn_days_since_salary")),
    ReasonFamily("T02", "Balances held on deposit",
                 ("txn_deposit_balance*", "txn_current_balance")),
    ReasonFamily("T03", "Use of the overdraft",
                 ("txn_overdraft_*", "txn_negative_*", "txn_min_balance_*")),
    ReasonFamily("T04", "Money coming in and going out",
                 ("txn_inflow_*", "txn_outflow_*", "txn_net_flow_*")),
    ReasonFamily("T05", "Activity on the accounts",
                 ("txn_count_*", "txn_amount_*", "txn_days_since_last", "txn_active_months_*")),
    ReasonFamily("T06", "Card spending", ("txn_card_spend_*", "txn_spend_*")),
    ReasonFamily("T07", "Cash withdrawals and banking channels used",
                 ("txn_*_share_*", "txn_atm_withdrawal_*")),
    ReasonFamily("T08", "Bill payments and loan repayments",
                 ("txn_bill_payment_*", "txn_repayments_*")),
    ReasonFamily("T09", "Fees charged and interest earned", ("txn_fees_*", "txn_interest_*")),
    ReasonFamily("P01", "Products held with the bank",
                 ("prod_n_products*", "prod_n_accounts", "prod_holds_*")),
    ReasonFamily("P02", "Length of the relationship with the bank",
                 ("prod_tenure_*", "prod_first_account_months", "tenure_months")),
    ReasonFamily("P03", "Accounts recently opened or closed", ("prod_opened_*", "prod_closed_*")),
    ReasonFamily("P04", "Savings or investments maturing soon", ("prod_maturing_*",)),
    ReasonFamily("I01", "Complaints made to the bank",
                 ("int_complaint*", "int_days_since_complaint")),
    ReasonFamily("I02", "Contact with the branch, call centre or manager",
                 ("int_interactions_*", "int_days_since_last", "int_branch_visits_*",
                  "int_call_centre_*", "int_manager_calls_*", "int_days_since_manager_call")),
    ReasonFamily("I03", "Response to marketing campaigns",
                 ("int_campaign_*", "int_days_since_campaign_contact")),
    ReasonFamily("I04", "Use of the mobile app", ("int_app_*",)),
    ReasonFamily("I05", "Interest shown in the bank's products", ("int_page_views_*",)),
    ReasonFamily("I06", "Satisfaction reported in surveys", ("int_*satisfaction*",)),
    ReasonFamily("A01", "Age", ("age_years",)),
    ReasonFamily("A02", "Customer segment", ("segment", "segment_rank")),
    ReasonFamily("A03", "Income band", ("income_band", "income_band_rank")),
    ReasonFamily("A04", "Region of the home branch", ("region",)),
    ReasonFamily("A05", "Occupation", ("occupation",)),
    ReasonFamily("A06", "Relationship manager assigned", ("has_manager",)),
)  # fmt: skip


@cache
def family_of(feature: str) -> ReasonFamily:
    """The family ``feature`` belongs to (KeyError when none declares it)."""
    for family in REASON_FAMILIES:
        if any(fnmatch(feature, pattern) for pattern in family.features):
            return family
    raise KeyError(
        f"feature {feature!r} belongs to no reason family: declare it in REASON_FAMILIES"
    )
