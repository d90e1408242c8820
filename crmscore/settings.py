"""All of crmscore's configuration, in one typed place.

Every value can be overridden by an environment variable prefixed ``CRMSCORE_``; nested sections
use a double underscore, e.g. ``CRMSCORE_SERVING__MAX_BATCH=500`` or ``CRMSCORE_TRACKING_URI=http://...``.
Stages read their section from :func:`get_settings` and never hard-code paths or thresholds.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from crmscore.synthetic import BankConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class GeneratorSettings(BaseModel):
    """Defaults of ``crmscore generate`` (the embedded demo bank)."""

    customers: int = 20_000
    months: int = 24
    seed: int = 7
    start: str = "2024-01-01"
    #: Processes simulating a bank larger than one group (``GROUP_CUSTOMERS``) at once; unset:
    #: every core this process may use. Any count writes the same tables; each process holds one
    #: group (about 2.2 GB for 250,000 customers).
    workers: int | None = Field(default=None, ge=1)

    def bank(self) -> BankConfig:
        """The bank these defaults describe (crmscore's own vocabulary, no shock)."""
        from crmscore.synthetic import BankConfig

        return BankConfig(
            customers=self.customers, months=self.months, seed=self.seed, start=self.start
        )


class CustomModelSettings(BaseModel):
    """A model of one of the bank's own outcomes (e.g. a campaign's responders), trained by the
    same pipeline and served by the same endpoint; its label is the ``outcome`` rows of the
    bank's ``outcomes`` table (events at monthly snapshots, or decided cases at their dates)."""

    #: The outcome's name in the outcomes table.
    outcome: str = Field(min_length=1)
    description: str = Field(min_length=1)
    #: Months after a snapshot in which an event counts (events only; cases are decided).
    horizon_months: int = Field(default=3, ge=1, le=36)
    #: Which model's feature service it reads (its inputs).
    features: Literal["churn", "cross_sell", "credit_risk"] = "churn"
    #: Who is labelled at a snapshot: customers with an open account, or with open credit.
    population: Literal["active", "credit"] = "active"


class TrainingSettings(BaseModel):
    """The training stage: MLflow location, out-of-time split, seed and scorecard scaling."""

    #: MLflow tracking + registry. The default is a SQLite database under ``mlruns/`` (MLflow 3's
    #: registry wants a database backend); set ``CRMSCORE_TRAINING__TRACKING_URI=http://host:5000``
    #: (or ``postgresql://...``) to use a server.
    tracking_uri: str = f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"
    #: Where new experiments keep artifacts when the tracking URI is a local database; empty means
    #: ``artifacts/`` next to the SQLite file (a remote server decides for itself).
    artifact_root: str | None = None
    #: Experiments and registered models are named ``<prefix><model>``, e.g. ``crmscore-churn``.
    name_prefix: str = "crmscore-"
    champion_alias: str = "champion"
    #: Months of history a snapshot needs before it is used (features need a look-back window).
    warmup_months: int = 3
    #: The latest snapshots before the gap are the validation set (early stopping, calibration).
    validation_snapshots: int = 3
    #: Keep at most this many (most recent) training snapshots: bounds time and memory.
    max_train_snapshots: int = 12
    #: Never train on fewer snapshots than this, even if it means a shorter train/test gap.
    min_train_snapshots: int = 6
    #: Share of customers held out of training: validation rows come only from them.
    holdout_share: float = 0.3
    #: An out-of-time test needs this many events in its snapshot; a smaller book (or one with too
    #: few snapshots for an out-of-time split, or decided cases) is evaluated by repeated
    #: stratified cross-validation instead, and says so.
    min_test_events: int = Field(default=30, ge=1)
    #: Repeated cross-validation: folds per repeat, and repeats (customers grouped per fold).
    cv_folds: int = Field(default=5, ge=2)
    cv_repeats: int = Field(default=3, ge=1)
    #: Bootstrap rounds of every 95% confidence interval: the test AUC's (whole customers
    #: resampled) and the model document's metric intervals.
    bootstrap_rounds: int = Field(default=200, ge=20)
    #: After early stopping, refit the booster on train + validation rows (not for calibrated
    #: models, nor when the test rows are the held-out customers).
    refit: bool = True
    #: ... but only below this many training rows. On the 200k synthetic bank's churn set (1.08M
    #: training rows, 103k validation rows) the refit doubled the fit (85 -> 164 s) and moved
    #: the test AUC by 0.0004 (0.8164 -> 0.8168, its 95% interval +-0.0065).
    refit_max_rows: int = Field(default=500_000, ge=1)
    #: Labelled rows (all snapshots, and products for cross-sell) a training set may hold. Above
    #: it, a fixed hash of ``customer_id`` keeps a share of the customers with all their rows:
    #: training memory stays bounded however big the bank grows (a 1M-customer bank trains in the
    #: memory of a 100k one), and the split's per-customer rules still hold.
    max_rows: int = Field(default=2_000_000, ge=1_000)
    #: Entity rows per point-in-time feature fetch from Feast: bounds the join's working memory.
    fetch_rows: int = Field(default=250_000, ge=1)
    #: The logistic baseline is fitted on at most this many (randomly drawn) training rows.
    baseline_max_rows: int = 200_000
    #: The stability reference (deciles and shares of the score and of every input, the base of
    #: PSI / CSI monitoring) and the train-test PSI are taken on at most this many (randomly drawn)
    #: training rows. 200,000 rows pin each decile's share to within about 0.1 point; scoring and
    #: binning every training row (about 1.1M a model at 1M customers) took 38 s of `train all`.
    reference_rows: int = Field(default=200_000, ge=1_000)
    #: Rows drawn from the test set to compute SHAP values for the summary plot.
    shap_rows: int = 2_000
    seed: int = 7
    #: LightGBM training threads. Unset (default): one thread below ``parallel_rows`` training
    #: rows, where OpenMP's start-up and spin-waits cost more than they save (and test workers
    #: sharing a box crawl), else every core this process may use (1.8x faster on 2 cores for a
    #: 1.3M-row set). A number fixes it whatever the size.
    n_jobs: int | None = Field(default=None, ge=1)
    parallel_rows: int = Field(default=200_000, ge=1)
    #: Where a model's labels come from: ``auto`` (default: the bank's outcomes table when it holds
    #: rows of the model's outcome, else the derived rule), ``derived`` or ``outcomes``.
    label_source: dict[str, Literal["auto", "derived", "outcomes"]] = {}
    #: The bank's own models, by name (``crmscore train <name>``); see CustomModelSettings.
    custom_models: dict[str, CustomModelSettings] = {}
    #: Scorecard: ``base_points`` at ``base_odds`` good:bad, ``points_to_double`` per doubling.
    base_points: float = 600.0
    base_odds: float = 50.0
    points_to_double: float = 20.0
    #: The credit-risk scorecard challenger (optbinning): characteristics kept (most information
    #: value first, none below ``challenger_min_iv``: a scorecard of a dozen characteristics is
    #: what risk committees read), at most ``challenger_max_bins`` bins each, none holding less
    #: than ``challenger_min_bin_share`` of the rows (stable WoEs), fitted on at most
    #: ``challenger_max_rows`` training rows. ``challenger_special_codes`` are sentinel values
    #: (e.g. -999) that get a bin of their own, like missing values do.
    challenger_characteristics: int = Field(default=12, ge=1)
    challenger_min_iv: float = 0.02
    challenger_max_bins: int = Field(default=6, ge=2)
    challenger_min_bin_share: float = Field(default=0.05, gt=0, lt=0.5)
    challenger_max_rows: int = Field(default=200_000, ge=1_000)
    challenger_special_codes: list[float] = []
    #: Master scale (``training.master_scale``): grade -> the highest PD it holds, best grade
    #: first, the last at 1. Ten grades whose bounds roughly double, as retail master scales do,
    #: so each grade holds a similar step in risk; a grade means the same default rate whichever
    #: model produced the PD. Override with JSON, e.g. ``CRMSCORE_TRAINING__MASTER_SCALE``.
    master_scale: dict[str, float] = {
        "1": 0.0015,
        "2": 0.003,
        "3": 0.006,
        "4": 0.012,
        "5": 0.02,
        "6": 0.035,
        "7": 0.06,
        "8": 0.10,
        "9": 0.20,
        "10": 1.0,
    }


class FeatureSettings(BaseModel):
    """The feature store (``features/``): where feature tables live and which online store serves.

    Embedded by default (DuckDB build and offline store, SQLite online store, file registry);
    Spark (``engine``, ``offline_store``) and Redis (``online_store``) are the scale paths.
    """

    #: Feast project name (namespaces the registry and online tables).
    project: str = "crmscore"
    #: Feature tables, registry and SQLite online store; empty means ``data_dir/features``.
    dir: Path | None = None
    online_store: Literal["sqlite", "redis"] = "sqlite"
    #: Redis ``host:port[,db=0,password=...]`` when ``online_store`` is ``redis``.
    redis_connection_string: str = "localhost:6379"
    #: A monthly snapshot stays valid this long for point-in-time joins (a month plus slack).
    ttl_days: int = 35
    #: Rows per online-store write while materialising: bounds memory at 100k+ customers.
    online_write_batch_size: int = Field(default=10_000, ge=1)
    #: What computes the feature tables: DuckDB in this process, or Spark for a bank beyond one
    #: machine (the same SQL, translated; needs ``pip install 'crmscore[spark]'`` and Java 17+).
    engine: Literal["duckdb", "spark"] = "duckdb"
    #: Feast's offline store for training sets and batch scoring: DuckDB over the Parquet feature
    #: tables, or Spark reading the same tables (for tables too big for one process).
    offline_store: Literal["duckdb", "spark"] = "duckdb"
    #: Spark master of the Spark engine and offline store: ``local[*]`` runs Spark inside this
    #: process on every core; ``spark://host:7077``, ``yarn`` or ``k8s://...`` use a cluster.
    spark_master: str = "local[*]"
    #: Further Spark settings, e.g. ``{"spark.driver.memory": "8g"}`` (JSON in the environment).
    spark_conf: dict[str, str] = {}
    #: Transactions per pass of the DuckDB feature build. A bigger bank is built in passes over
    #: disjoint sets of its customers (each feature is one customer's history), then each table's
    #: passes are merged: only one pass's intermediate tables need memory or spill space. Sized
    #: by transactions, not customers, because the account-month aggregate over them is what
    #: grows: one pass of the 1M bank's filled a 44 GB disk, and its cost per customer rises
    #: with the pass (36M transactions: 27 s for that step, 18M: 9.4 s, at a 4-6 GB cap).
    build_pass_transactions: int = Field(default=15_000_000, ge=1)
    #: DuckDB threads for the feature build and Feast's DuckDB offline store; empty means one per
    #: core.
    duckdb_threads: int | None = None
    #: DuckDB's memory cap for the feature build, training labels and Feast's DuckDB offline
    #: store (e.g. ``8GB``); it spills to disk beyond it.
    #: Empty means half of the machine's RAM: DuckDB's own default (80 %) left too little for the
    #: rest of a busy machine and was killed by the kernel at 1M customers.
    duckdb_memory_limit: str | None = None

    def duckdb_memory(self) -> str:
        """The memory cap to give DuckDB (``duckdb_memory_limit``, or half the RAM)."""
        if self.duckdb_memory_limit:
            return self.duckdb_memory_limit
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return f"{max(1, ram // 2**31)}GiB"  # half, in whole GiB


class ServingSettings(BaseModel):
    """The scoring service and batch commands (``serving/``): access, limits and business rules.

    API keys map to roles (``marketing``: score, targets; ``risk``: score, explain; ``service``:
    score, score_features; ``admin``: everything and reload). Set them in the environment, never in
    code: ``CRMSCORE_SERVING__API_KEYS='{"k-mkt-1": "marketing", "k-risk-1": "risk"}'``.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    #: Server worker processes (each loads the models once): one per core for throughput.
    workers: int = Field(default=1, ge=1)
    #: BentoML's own access log line per request. Off by default: every request already leaves
    #: its AUDIT line (role, endpoint, status, pseudonymised ids), and the second line cost more
    #: than a tenth of a single-customer /score.
    access_log: bool = False
    #: Share of requests traced by OpenTelemetry (BentoML's ``tracing.sample_rate``; configure an
    #: exporter with BentoML's own ``tracing`` settings). At 0 no request is traced and BentoML's
    #: tracing middleware is skipped on every route: it still cost a tenth of a single-customer
    #: /score while recording nothing.
    trace_sample_rate: float = Field(default=0.0, ge=0, le=1)
    #: API key -> role. Empty means every protected endpoint answers 401.
    api_keys: dict[str, str] = {}
    #: API key -> customer manager id, for every key whose role is ``manager``: the console shows
    #: such a key its own worklist and its own customers only (DOMAIN.md: each role sees what it
    #: needs, no more).
    manager_ids: dict[str, int] = {}
    #: Key of the HMAC that pseudonymises customer ids in the audit log. Keep it stable (and
    #: secret) so audit lines can be joined over time; empty = a random key per server process.
    audit_key: str = ""
    #: Most customer ids one /score request may carry.
    max_batch: int = Field(default=1000, ge=1)
    #: /score requests with at most this many ids (and /explain when >= 1) run on the server's
    #: event loop instead of a worker thread: no thread hand-off, which doubled single-customer
    #: latency on a busy machine. The loop waits for them, store reads included (a SQLite store
    #: locked by a writer holds it up to SQLite's 5 s busy timeout); 0 sends everything to a
    #: thread.
    inline_max_ids: int = Field(default=10, ge=0)
    #: Loading the champions from an HTTP registry (start-up, ``/reload``, batch): seconds a
    #: registry call may stay silent, and retries of a failed call. A hung or unreachable registry
    #: then fails the load within about (retries + 1) x timeout and ``/reload`` answers 503 with
    #: the models in use kept (MLflow's own defaults wait 120 s per call and retry 7 times).
    registry_timeout_seconds: int = Field(default=5, ge=1)
    registry_max_retries: int = Field(default=1, ge=0)
    #: Reason codes returned per explanation (at most: fewer when fewer families push that way).
    #: Four by default: adverse-action practice gives the principal reasons, no more than four.
    top_k: int = Field(default=4, ge=1, le=50)
    #: Reasons /explain gives unless asked otherwise: those that raise the score (for credit risk
    #: the principal reasons of an adverse-action notice), those that lower it, or both by size.
    reason_direction: Literal["raises", "lowers", "both"] = "raises"
    #: Attributes never given as a reason, per model (they still count in the contributions).
    #: Credit risk: a notice must not state age, where someone lives or what they do for a living
    #: as why credit was refused (age and region are protected grounds or close proxies for them
    #: under equal-credit rules; occupation is a proxy for both).
    never_reasons: dict[str, list[str]] = {"credit_risk": ["age_years", "region", "occupation"]}
    #: Credit products are neither the next best product nor on a target list above this PD.
    max_pd: float = Field(default=0.10, gt=0, le=1)
    #: Yearly profit contribution of a customer (tiers): margins on what they hold today.
    deposit_margin: float = 0.015
    lending_margin: float = 0.03
    card_interchange: float = 0.01
    #: Tiers (DOMAIN.md): A = value >= tier_a_value with an offer >= tier_a_propensity;
    #: B = value >= tier_b_value; C = holds deposits; D = the rest, or risk/churn too high.
    tier_a_value: float = 2000.0
    tier_a_propensity: float = 0.03
    tier_b_value: float = 500.0
    tier_max_churn: float = 0.30
    tier_max_pd: float = 0.20
    #: Customers per online-store read when a whole list is scored (targets): key lookups.
    batch_chunk: int = Field(default=1000, ge=1)
    #: Customers per chunk of ``crmscore score`` (one offline point-in-time join, scored and
    #: appended to the output): bounds its memory at any bank size. At 1M customers, 200,000
    #: took 134 s and 3.2 GB, 50,000 took 153 s and 1.7 GB (Feast plans and compiles its join
    #: once per chunk).
    snapshot_chunk: int = Field(default=200_000, ge=1)


class MonitoringSettings(BaseModel):
    """``crmscore monitor`` and the model document: stability bands, back-test thresholds."""

    #: PSI / CSI bands, the usual credit-risk rule of thumb: below ``psi_amber`` stable, from
    #: ``psi_red`` on the population has shifted (red fails ``crmscore monitor``).
    psi_amber: float = 0.10
    psi_red: float = 0.25
    #: Whether a red input CSI alone fails ``crmscore monitor``. Off: inputs drift with the
    #: calendar (12-month windows filling up, customers ageing) without the score moving; the
    #: score PSI and the back-tests say whether the drift matters. Red inputs are always listed.
    fail_on_input_csi: bool = False
    #: An input's missing rate rising by more than this (absolute share) is red: a broken feed
    #: shows up as missing values long before it moves a PSI. Falls are only reported: with a
    #: short history they are the norm (look-back windows fill up, first complaints arrive).
    max_missing_change: float = Field(default=0.10, gt=0, le=1)
    #: Back-testing a PD per rating grade (Jeffreys test, one-sided: is the PD too low?): a
    #: p-value below ``pvalue_red`` is red, below ``pvalue_amber`` amber (ECB/TRIM practice).
    pvalue_amber: float = 0.05
    pvalue_red: float = 0.01
    #: Back-testing any model: an AUC this far below the champion's test AUC is red.
    max_auc_drop: float = Field(default=0.05, gt=0)
    #: MLflow experiment the monitoring runs are logged to.
    experiment: str = "crmscore-monitoring"


class ConsoleSettings(BaseModel):
    """The web console under ``/console`` (``serving/console``): sessions, pages and campaigns."""

    #: A login lasts a working day; then the session cookie expires and the key is asked again.
    session_hours: float = Field(default=10.0, gt=0)
    #: Rows per page of every table (ranked lists, worklists, portfolio groups).
    page_size: int = Field(default=25, ge=1, le=1000)
    #: Monthly snapshots behind the trends (the latest included): customer view and portfolio.
    #: Each one is a point-in-time read and a scoring of the whole book when it is built.
    history_snapshots: int = Field(default=6, ge=1, le=36)
    #: Build the customer book as the server starts instead of at the first console page. Off:
    #: the build (about a minute at 20,000 customers) runs in the serving process and competes
    #: with every API request for the interpreter, which was most of /score's p99 tail; a server
    #: that serves people more than other services (a console replica) turns it on.
    build_book_at_start: bool = False
    #: Interactions listed on a customer's page, most recent first (app logins and page views,
    #: dozens a month, are left out: their counts are in the features).
    interactions_shown: int = Field(default=20, ge=1)
    #: Saved campaigns (one folder each); empty means ``data_dir/campaigns``.
    campaigns_dir: Path | None = None
    #: Share of a campaign's list held out as a random control group unless the form says else.
    control_share: float = Field(default=0.1, ge=0, lt=1)
    #: Months after the campaign date in which an opened account counts as take-up (the
    #: cross-sell model's own horizon).
    window_months: int = Field(default=3, ge=1, le=24)


class Settings(BaseSettings):
    """Root settings object. Sections are added by the stages that own them."""

    model_config = SettingsConfigDict(
        env_prefix="CRMSCORE_", env_nested_delimiter="__", extra="ignore"
    )

    #: Root of every dataset crmscore writes: raw/, oracle/, features/ live below it.
    data_dir: Path = Field(default=PROJECT_ROOT / "data")
    generator: GeneratorSettings = GeneratorSettings()
    training: TrainingSettings = TrainingSettings()
    features: FeatureSettings = FeatureSettings()
    serving: ServingSettings = ServingSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    console: ConsoleSettings = ConsoleSettings()

    @property
    def raw_dir(self) -> Path:
        """Validated raw tables (the schema in :mod:`crmscore.schema`)."""
        return self.data_dir / "raw"

    @property
    def oracle_dir(self) -> Path:
        """Synthetic truth. Never read by features or training; only by evaluation."""
        return self.data_dir / "oracle"

    @property
    def campaigns_dir(self) -> Path:
        """Saved campaigns: ``<id>/campaign.json`` and ``<id>/list.parquet``."""
        return self.console.campaigns_dir or self.data_dir / "campaigns"

    @property
    def features_dir(self) -> Path:
        """Feature tables (``tables/``), the Feast registry and the SQLite online store."""
        return self.features.dir or self.data_dir / "features"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (environment read once)."""
    return Settings()
