//! The fictional company behind the demo: teams, features and their traffic shapes.
//!
//! Kept as plain data so that the planted stories (retry spike, frontier model for
//! classification, unattributed keys, a model switch, a feature launch) are visible in one
//! place and the generator stays generic.

/// A team, its provider project and the application name on its API keys.
pub(crate) struct Team {
    pub name: &'static str,
    pub project: &'static str,
    pub application: &'static str,
}

pub(crate) const TEAMS: &[Team] = &[
    Team {
        name: "support",
        project: "proj-support",
        application: "helpdesk",
    },
    Team {
        name: "search",
        project: "proj-search",
        application: "knowledge-search",
    },
    Team {
        name: "growth",
        project: "proj-growth",
        application: "marketing-studio",
    },
    Team {
        name: "platform",
        project: "proj-platform",
        application: "dev-tools",
    },
    Team {
        name: "data",
        project: "proj-data",
        application: "analytics",
    },
    Team {
        name: "sales",
        project: "proj-sales",
        application: "sales-assistant",
    },
    Team {
        name: "legal",
        project: "proj-legal",
        application: "legal-review",
    },
];

/// When in the day (UTC) and week a feature's traffic arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// Office hours, mostly US: quiet weekends.
    Business,
    /// Customer-facing, around the clock with a daytime bulge.
    Support,
    /// Scheduled jobs in the early UTC morning, every day.
    Nightly,
    /// Machine traffic, flat over the day.
    Flat,
    /// Engineers: office hours and almost nothing at weekends.
    Developer,
}

impl Pattern {
    /// Relative volume per UTC hour.
    pub fn hours(self) -> [f64; 24] {
        match self {
            Pattern::Business => [
                3., 2., 2., 1., 1., 1., 2., 4., 6., 8., 9., 10., 11., 12., 14., 15., 15., 14., 12.,
                10., 8., 6., 5., 4.,
            ],
            Pattern::Support => [
                6., 5., 5., 4., 4., 4., 5., 7., 9., 10., 10., 10., 11., 12., 13., 13., 13., 12.,
                11., 10., 9., 8., 7., 6.,
            ],
            Pattern::Nightly => [
                10., 14., 16., 16., 12., 8., 3., 1., 0.5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2,
                0.2, 0.2, 0.2, 0.2, 0.5, 2., 6.,
            ],
            Pattern::Flat => [1.; 24],
            Pattern::Developer => [
                1., 0.5, 0.5, 0.5, 0.5, 1., 2., 4., 8., 10., 11., 11., 9., 11., 13., 14., 14., 13.,
                10., 7., 4., 3., 2., 1.5,
            ],
        }
    }

    /// Volume on Saturdays and Sundays relative to a weekday.
    pub fn weekend(self) -> f64 {
        match self {
            Pattern::Business => 0.35,
            Pattern::Support => 0.6,
            Pattern::Nightly => 1.0,
            Pattern::Flat => 0.9,
            Pattern::Developer => 0.15,
        }
    }
}

/// How a feature uses prompt caching.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cache {
    None,
    /// Automatic prefix caching (OpenAI, Gemini): this share of the prompt is a cache read.
    Auto(f64),
    /// Explicit caching (Anthropic style) of a fixed prefix of this many tokens per request,
    /// 5-minute TTL; `ttl_1h` uses the 1-hour cache instead. `hit` is the share of requests
    /// that read the prefix rather than write it.
    Explicit {
        prefix: f64,
        hit: f64,
        ttl_1h: bool,
    },
}

/// Who is behind a request, for `user_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Users {
    None,
    /// Support agents: `agent-NNN`.
    Agents,
    /// Employees of the company: `emp-NNNN`.
    Employees,
    /// Sales representatives: `rep-NNN`.
    Reps,
}

impl Users {
    pub fn pool(self) -> Option<(&'static str, u32)> {
        match self {
            Users::None => None,
            Users::Agents => Some(("agent", 120)),
            Users::Employees => Some(("emp", 300)),
            Users::Reps => Some(("rep", 60)),
        }
    }
}

/// One stream of traffic: a feature on one model over a range of days.
pub(crate) struct Feature {
    /// `None` for traffic on keys nobody tagged (the unattributed-spend story).
    pub team: Option<&'static str>,
    pub feature: Option<&'static str>,
    /// Set for unattributed traffic: the shared key it arrives on.
    pub api_key: Option<&'static str>,
    pub provider: &'static str,
    pub model: &'static str,
    /// Days before `today` when the stream starts (180 = the whole window) and ends (0 = now).
    pub from_days_ago: i64,
    pub to_days_ago: i64,
    /// Days over which a launch ramps up to full volume (0 = no ramp).
    pub ramp_days: f64,
    /// Production requests on a weekday at the start of the window (also for streams that
    /// start later: growth is counted from the window start).
    pub requests: f64,
    /// Weekly growth rate.
    pub growth: f64,
    /// Mean prompt (input + cached + cache write) and output tokens per request.
    pub input: f64,
    pub output: f64,
    pub cache: Cache,
    /// Share of output tokens that are reasoning tokens.
    pub reasoning: f64,
    /// Share of requests sent through the batch API.
    pub batch: f64,
    pub customers: bool,
    pub users: Users,
    pub max_tokens: Option<i32>,
    pub pattern: Pattern,
    /// Production usage rows per weekday at the start of the window.
    pub rows: f64,
    /// Distinct prompts when the feature repeats itself (duplicate-request story); 0 = unique.
    pub dup_pool: u32,
    /// Whether staging and dev traffic exists too.
    pub envs: bool,
    pub region: Option<&'static str>,
    pub tags: Option<&'static str>,
}

/// Defaults for the fields most features share.
const BASE: Feature = Feature {
    team: None,
    feature: None,
    api_key: None,
    provider: "",
    model: "",
    from_days_ago: 180,
    to_days_ago: 0,
    ramp_days: 0.,
    requests: 0.,
    growth: 0.035,
    input: 0.,
    output: 0.,
    cache: Cache::None,
    reasoning: 0.,
    batch: 0.,
    customers: false,
    users: Users::None,
    max_tokens: None,
    pattern: Pattern::Business,
    rows: 10.,
    dup_pool: 0,
    envs: true,
    region: None,
    tags: None,
};

/// The feature whose retry loop spikes about three weeks ago.
pub(crate) const SPIKE_FEATURE: &str = "email-copy";
/// Days before today of the two spike days.
pub(crate) const SPIKE_DAYS_AGO: [i64; 2] = [22, 21];
/// Days before today when o3's price cut takes effect.
pub(crate) const PRICE_CUT_DAYS_AGO: i64 = 90;
/// Days before today when ticket-summarization moved from gpt-4o to gpt-4o-mini.
const SWITCH_DAYS_AGO: i64 = 75;

/// Every traffic stream of the demo company.
pub(crate) const FEATURES: &[Feature] = &[
    // --- support: customer-facing helpdesk ---
    // Story: a frontier model doing one-word classification.
    Feature {
        team: Some("support"),
        feature: Some("ticket-classification"),
        provider: "openai",
        model: "gpt-4o",
        requests: 60_000.,
        growth: 0.02,
        input: 450.,
        output: 6.,
        customers: true,
        max_tokens: Some(16),
        pattern: Pattern::Support,
        rows: 50.,
        ..BASE
    },
    Feature {
        team: Some("support"),
        feature: Some("reply-drafting"),
        provider: "anthropic",
        model: "claude-sonnet-4-0",
        requests: 12_000.,
        input: 4_100.,
        output: 350.,
        cache: Cache::Explicit {
            prefix: 3_200.,
            hit: 0.94,
            ttl_1h: false,
        },
        customers: true,
        users: Users::Agents,
        max_tokens: Some(1024),
        pattern: Pattern::Support,
        rows: 45.,
        tags: Some(r#"{"surface":"agent-workspace"}"#),
        ..BASE
    },
    // Story: an optimisation that shows as a level shift (gpt-4o -> gpt-4o-mini).
    Feature {
        team: Some("support"),
        feature: Some("ticket-summarization"),
        provider: "openai",
        model: "gpt-4o",
        to_days_ago: SWITCH_DAYS_AGO,
        requests: 20_000.,
        input: 1_800.,
        output: 200.,
        customers: true,
        pattern: Pattern::Support,
        rows: 35.,
        ..BASE
    },
    Feature {
        team: Some("support"),
        feature: Some("ticket-summarization"),
        provider: "openai",
        model: "gpt-4o-mini",
        from_days_ago: SWITCH_DAYS_AGO,
        requests: 20_000.,
        input: 1_800.,
        output: 200.,
        customers: true,
        pattern: Pattern::Support,
        rows: 35.,
        ..BASE
    },
    Feature {
        team: Some("support"),
        feature: Some("sentiment-analysis"),
        provider: "google",
        model: "gemini-2.0-flash",
        requests: 40_000.,
        input: 300.,
        output: 3.,
        customers: true,
        // Story: a cap so tight that half the labels are cut off (a max_tokens finding).
        max_tokens: Some(3),
        pattern: Pattern::Support,
        rows: 30.,
        dup_pool: 400,
        region: Some("us-central1"),
        ..BASE
    },
    Feature {
        team: Some("support"),
        feature: Some("auto-triage"),
        provider: "anthropic",
        model: "claude-3-haiku",
        requests: 25_000.,
        input: 800.,
        output: 60.,
        customers: true,
        max_tokens: Some(128),
        pattern: Pattern::Support,
        rows: 30.,
        ..BASE
    },
    Feature {
        team: Some("support"),
        feature: Some("help-center-chat"),
        provider: "openai",
        model: "gpt-4.1-mini",
        requests: 25_000.,
        input: 2_500.,
        output: 250.,
        cache: Cache::Auto(0.5),
        customers: true,
        pattern: Pattern::Support,
        rows: 45.,
        tags: Some(r#"{"surface":"help-center"}"#),
        ..BASE
    },
    Feature {
        team: Some("support"),
        feature: Some("macro-suggestions"),
        provider: "openai",
        model: "gpt-4.1-mini",
        requests: 15_000.,
        input: 1_500.,
        output: 120.,
        cache: Cache::Auto(0.4),
        customers: true,
        users: Users::Agents,
        max_tokens: Some(256),
        pattern: Pattern::Support,
        rows: 20.,
        ..BASE
    },
    // --- search: customer-facing knowledge search ---
    Feature {
        team: Some("search"),
        feature: Some("query-rewrite"),
        provider: "openai",
        model: "gpt-4o-mini",
        requests: 80_000.,
        input: 250.,
        output: 40.,
        customers: true,
        max_tokens: Some(64),
        pattern: Pattern::Support,
        rows: 35.,
        dup_pool: 600,
        ..BASE
    },
    Feature {
        team: Some("search"),
        feature: Some("semantic-rerank"),
        provider: "openai",
        model: "gpt-4.1-nano",
        requests: 60_000.,
        input: 2_500.,
        output: 30.,
        customers: true,
        max_tokens: Some(64),
        pattern: Pattern::Support,
        rows: 30.,
        ..BASE
    },
    // The biggest line item: long retrieved contexts, no caching.
    Feature {
        team: Some("search"),
        feature: Some("answer-generation"),
        provider: "anthropic",
        model: "claude-3-5-sonnet",
        requests: 10_000.,
        growth: 0.045,
        input: 5_000.,
        output: 400.,
        customers: true,
        pattern: Pattern::Support,
        rows: 60.,
        ..BASE
    },
    Feature {
        team: Some("search"),
        feature: Some("doc-qa"),
        provider: "google",
        model: "gemini-1.5-pro",
        requests: 3_500.,
        input: 20_000.,
        output: 500.,
        customers: true,
        // Story: a cap far above any answer (a max_tokens finding with nothing saved yet).
        max_tokens: Some(8192),
        pattern: Pattern::Business,
        rows: 30.,
        region: Some("us-central1"),
        ..BASE
    },
    Feature {
        team: Some("search"),
        feature: Some("search-autocomplete"),
        provider: "mistral",
        model: "mistral-small-latest",
        requests: 100_000.,
        input: 60.,
        output: 12.,
        customers: true,
        max_tokens: Some(24),
        pattern: Pattern::Support,
        rows: 25.,
        dup_pool: 300,
        ..BASE
    },
    // --- growth: marketing ---
    // Story: the runaway retry loop (see SPIKE_DAYS_AGO); no max_tokens and verbose output.
    Feature {
        team: Some("growth"),
        feature: Some("email-copy"),
        provider: "openai",
        model: "gpt-4.1",
        requests: 3_000.,
        input: 1_200.,
        output: 600.,
        cache: Cache::Auto(0.3),
        customers: true,
        pattern: Pattern::Business,
        rows: 25.,
        ..BASE
    },
    Feature {
        team: Some("growth"),
        feature: Some("ad-variants"),
        provider: "mistral",
        model: "mistral-large",
        requests: 2_000.,
        input: 800.,
        output: 400.,
        pattern: Pattern::Business,
        rows: 15.,
        ..BASE
    },
    Feature {
        team: Some("growth"),
        feature: Some("seo-content"),
        provider: "anthropic",
        model: "claude-3-5-haiku-latest",
        requests: 1_500.,
        input: 2_000.,
        output: 1_500.,
        batch: 1.0,
        pattern: Pattern::Nightly,
        rows: 10.,
        ..BASE
    },
    // Policy story: deepseek is not an approved provider.
    Feature {
        team: Some("growth"),
        feature: Some("lead-scoring"),
        provider: "deepseek",
        model: "deepseek-chat",
        requests: 8_000.,
        input: 1_500.,
        output: 50.,
        max_tokens: Some(100),
        pattern: Pattern::Business,
        rows: 20.,
        ..BASE
    },
    Feature {
        team: Some("growth"),
        feature: Some("personalization"),
        provider: "google",
        model: "gemini-2.0-flash",
        requests: 30_000.,
        input: 900.,
        output: 150.,
        customers: true,
        pattern: Pattern::Support,
        rows: 30.,
        region: Some("us-central1"),
        ..BASE
    },
    // --- platform: developer tools ---
    Feature {
        team: Some("platform"),
        feature: Some("code-review-bot"),
        provider: "openai",
        model: "o3-mini",
        requests: 1_500.,
        input: 8_000.,
        output: 2_500.,
        cache: Cache::Auto(0.2),
        reasoning: 0.7,
        users: Users::Employees,
        pattern: Pattern::Developer,
        rows: 30.,
        ..BASE
    },
    Feature {
        team: Some("platform"),
        feature: Some("test-generation"),
        provider: "deepseek",
        model: "deepseek-reasoner",
        requests: 800.,
        input: 4_000.,
        output: 3_000.,
        reasoning: 0.6,
        users: Users::Employees,
        pattern: Pattern::Developer,
        rows: 15.,
        ..BASE
    },
    Feature {
        team: Some("platform"),
        feature: Some("incident-summary"),
        provider: "anthropic",
        model: "claude-sonnet-4-0",
        requests: 150.,
        input: 12_000.,
        output: 800.,
        pattern: Pattern::Flat,
        rows: 12.,
        ..BASE
    },
    Feature {
        team: Some("platform"),
        feature: Some("log-analysis"),
        provider: "aws_bedrock",
        model: "amazon.nova-lite-v1:0",
        requests: 50_000.,
        input: 3_000.,
        output: 100.,
        pattern: Pattern::Flat,
        rows: 36.,
        region: Some("us-east-1"),
        ..BASE
    },
    Feature {
        team: Some("platform"),
        feature: Some("pr-descriptions"),
        provider: "mistral",
        model: "codestral",
        requests: 1_200.,
        input: 3_000.,
        output: 300.,
        users: Users::Employees,
        pattern: Pattern::Developer,
        rows: 15.,
        ..BASE
    },
    // --- data: analytics ---
    // Story: o3's price cut (see PRICE_CUT_DAYS_AGO).
    Feature {
        team: Some("data"),
        feature: Some("sql-assistant"),
        provider: "openai",
        model: "o3",
        requests: 600.,
        input: 6_000.,
        output: 3_000.,
        cache: Cache::Auto(0.3),
        reasoning: 0.75,
        users: Users::Employees,
        pattern: Pattern::Business,
        rows: 30.,
        ..BASE
    },
    Feature {
        team: Some("data"),
        feature: Some("report-narratives"),
        provider: "openai",
        model: "gpt-4.1",
        requests: 400.,
        input: 10_000.,
        output: 1_500.,
        batch: 1.0,
        pattern: Pattern::Nightly,
        rows: 8.,
        ..BASE
    },
    Feature {
        team: Some("data"),
        feature: Some("data-extraction"),
        provider: "google",
        model: "gemini-2.5-flash",
        requests: 20_000.,
        input: 3_000.,
        output: 400.,
        reasoning: 0.3,
        batch: 0.5,
        customers: true,
        pattern: Pattern::Flat,
        rows: 30.,
        region: Some("us-central1"),
        ..BASE
    },
    Feature {
        team: Some("data"),
        feature: Some("anomaly-explainer"),
        provider: "openai",
        model: "gpt-4o-mini",
        requests: 300.,
        input: 2_000.,
        output: 300.,
        pattern: Pattern::Flat,
        rows: 8.,
        ..BASE
    },
    // A nightly job on the most expensive model at standard prices: a batch-API candidate.
    Feature {
        team: Some("data"),
        feature: Some("forecast-commentary"),
        provider: "anthropic",
        model: "claude-opus-4-0",
        requests: 120.,
        input: 15_000.,
        output: 2_000.,
        pattern: Pattern::Nightly,
        rows: 6.,
        ..BASE
    },
    // --- sales ---
    Feature {
        team: Some("sales"),
        feature: Some("call-summaries"),
        provider: "anthropic",
        model: "claude-3-5-sonnet",
        requests: 2_500.,
        input: 9_000.,
        output: 700.,
        users: Users::Reps,
        pattern: Pattern::Business,
        rows: 30.,
        ..BASE
    },
    Feature {
        team: Some("sales"),
        feature: Some("crm-enrichment"),
        provider: "openai",
        model: "gpt-4o-mini",
        requests: 20_000.,
        input: 1_000.,
        output: 200.,
        batch: 1.0,
        pattern: Pattern::Nightly,
        rows: 12.,
        ..BASE
    },
    // Story: a feature launched mid-window.
    Feature {
        team: Some("sales"),
        feature: Some("proposal-writer"),
        provider: "google",
        model: "gemini-2.5-pro",
        from_days_ago: 80,
        ramp_days: 14.,
        requests: 300.,
        growth: 0.06,
        input: 15_000.,
        output: 3_000.,
        cache: Cache::Auto(0.25),
        reasoning: 0.4,
        users: Users::Reps,
        pattern: Pattern::Business,
        rows: 20.,
        region: Some("us-central1"),
        ..BASE
    },
    Feature {
        team: Some("sales"),
        feature: Some("meeting-notes"),
        provider: "aws_bedrock",
        model: "amazon.nova-pro-v1:0",
        requests: 3_000.,
        input: 6_000.,
        output: 500.,
        users: Users::Reps,
        pattern: Pattern::Business,
        rows: 25.,
        region: Some("us-east-1"),
        ..BASE
    },
    Feature {
        team: Some("sales"),
        feature: Some("competitor-briefs"),
        provider: "aws_bedrock",
        model: "meta.llama3-3-70b-instruct-v1:0",
        requests: 400.,
        input: 4_000.,
        output: 1_000.,
        pattern: Pattern::Business,
        rows: 8.,
        region: Some("us-east-1"),
        ..BASE
    },
    // --- legal ---
    Feature {
        team: Some("legal"),
        feature: Some("contract-review"),
        provider: "anthropic",
        model: "claude-opus-4-0",
        requests: 200.,
        input: 26_000.,
        output: 900.,
        cache: Cache::Explicit {
            prefix: 25_000.,
            hit: 0.86,
            ttl_1h: true,
        },
        users: Users::Employees,
        max_tokens: Some(2048),
        pattern: Pattern::Business,
        rows: 20.,
        ..BASE
    },
    Feature {
        team: Some("legal"),
        feature: Some("pii-redaction"),
        provider: "openai",
        model: "gpt-4.1-nano",
        requests: 30_000.,
        input: 1_200.,
        output: 1_100.,
        customers: true,
        pattern: Pattern::Flat,
        rows: 25.,
        ..BASE
    },
    Feature {
        team: Some("legal"),
        feature: Some("policy-qa"),
        provider: "mistral",
        model: "mistral-large",
        requests: 500.,
        input: 3_000.,
        output: 400.,
        users: Users::Employees,
        pattern: Pattern::Business,
        rows: 12.,
        ..BASE
    },
    Feature {
        team: Some("legal"),
        feature: Some("clause-extraction"),
        provider: "aws_bedrock",
        model: "anthropic.claude-3-5-sonnet-20241022-v2:0",
        requests: 800.,
        input: 6_000.,
        output: 500.,
        cache: Cache::Explicit {
            prefix: 2_000.,
            hit: 0.9,
            ttl_1h: false,
        },
        pattern: Pattern::Business,
        rows: 15.,
        region: Some("eu-central-1"),
        ..BASE
    },
    // --- unattributed: shared keys nobody tagged (attribution_rules cover the first two) ---
    Feature {
        api_key: Some("key-legacy-batch-openai"),
        provider: "openai",
        model: "gpt-4o",
        requests: 2_500.,
        input: 3_000.,
        output: 500.,
        pattern: Pattern::Nightly,
        rows: 15.,
        envs: false,
        ..BASE
    },
    Feature {
        api_key: Some("key-hackathon-anthropic"),
        provider: "anthropic",
        model: "claude-sonnet-4-0",
        from_days_ago: 120,
        requests: 300.,
        input: 5_000.,
        output: 1_000.,
        pattern: Pattern::Business,
        rows: 8.,
        envs: false,
        tags: Some(r#"{"owner":"hackathon"}"#),
        ..BASE
    },
    Feature {
        api_key: Some("key-shared-google"),
        provider: "google",
        model: "gemini-2.5-pro",
        requests: 400.,
        input: 8_000.,
        output: 1_500.,
        reasoning: 0.4,
        pattern: Pattern::Business,
        rows: 10.,
        envs: false,
        ..BASE
    },
    Feature {
        api_key: Some("key-ops-scripts-mistral"),
        provider: "mistral",
        model: "mistral-large",
        requests: 1_500.,
        input: 2_000.,
        output: 500.,
        pattern: Pattern::Flat,
        rows: 10.,
        envs: false,
        ..BASE
    },
];

/// Unattributed keys that attribution_rules map to a team (the others stay uncovered).
pub(crate) const RULE_MAPPED_KEYS: &[(&str, &str, &str, &str)] = &[
    // (api_key_id, team, feature, cost_center)
    (
        "key-legacy-batch-openai",
        "data",
        "legacy-export",
        "cc-analytics",
    ),
    (
        "key-hackathon-anthropic",
        "growth",
        "hackathon",
        "cc-marketing",
    ),
];

/// Name parts for the customer list (20 x 20 = 400 fictional companies).
const CUSTOMER_PREFIX: &[&str] = &[
    "acme", "blue", "cedar", "delta", "ember", "fjord", "granite", "harbor", "iris", "juniper",
    "kestrel", "lumen", "maple", "nimbus", "orbit", "pioneer", "quartz", "river", "summit",
    "tundra",
];
const CUSTOMER_SUFFIX: &[&str] = &[
    "analytics",
    "bank",
    "clinics",
    "dental",
    "energy",
    "foods",
    "games",
    "health",
    "insurance",
    "labs",
    "logistics",
    "media",
    "motors",
    "outdoor",
    "pharma",
    "realty",
    "retail",
    "software",
    "travel",
    "ventures",
];

/// Every customer name, in a fixed order (the seed decides their popularity).
pub(crate) fn customer_names() -> Vec<String> {
    let mut out = Vec::with_capacity(CUSTOMER_PREFIX.len() * CUSTOMER_SUFFIX.len());
    for p in CUSTOMER_PREFIX {
        for s in CUSTOMER_SUFFIX {
            out.push(format!("{p}-{s}"));
        }
    }
    out
}
