//! Word lists for generated exports. Some names carry accents, CJK, emoji, commas and quotes
//! on purpose: they exercise CSV quoting, JSON escaping and UTF-8 handling.

/// The 40 Elements. None start-cases onto an account field's attribute name.
pub const ELEMENTS: [&str; 40] = [
    "Slack Integration",
    "Salesforce Sync",
    "HubSpot Sync",
    "API Keys",
    "Dashboards",
    "Custom Reports",
    "Webhooks",
    "SSO Logins",
    "Mobile App Sessions",
    "CSV Exports",
    "Scheduled Reports",
    "Zapier Zaps",
    "Jira Tickets",
    "GitHub Repos",
    "Email Campaigns",
    "Workflows",
    "Automations",
    "Integrations Enabled",
    "Seats Used",
    "Café Reports",
    "Zürich Data Center Usage",
    "東京 Region Requests",
    "Ñandú Widgets",
    "🚀 Launches",
    "Über Exports",
    "São Paulo Team Invites",
    "Forms Published",
    "Surveys Sent",
    "Chatbot Conversations",
    "Knowledge Base Articles",
    "Invoices Generated",
    "Audit Log Exports",
    "Sandbox Environments",
    "Data Warehouse Syncs",
    "Feature Flags",
    "A/B Tests",
    "Notifications Sent",
    "Files Uploaded",
    "Mentions 👋",
    "Projects Created",
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Int,
    Float,
    Text,
}

/// The 15 Success Metrics, each with one value type.
pub const METRICS: [(&str, MetricType); 15] = [
    ("Weekly Active Users", MetricType::Int),
    ("Monthly Active Users", MetricType::Int),
    ("Logins (30d)", MetricType::Int),
    ("Tickets Opened (90d)", MetricType::Int),
    ("Days Since Last Login", MetricType::Int),
    ("Adoption Rate", MetricType::Float),
    ("Time to Value (days)", MetricType::Float),
    ("Feature Depth Score", MetricType::Float),
    ("NPS Response Rate", MetricType::Float),
    ("Expansion Probability", MetricType::Float),
    ("Tier", MetricType::Text),
    ("Onboarding Stage", MetricType::Text),
    ("Support Plan", MetricType::Text),
    ("Région principale", MetricType::Text),
    ("導入フェーズ", MetricType::Text),
];

pub const METRIC_WORDS: [&str; 10] = [
    "gold",
    "silver",
    "bronze",
    "kickoff",
    "live",
    "premium",
    "standard",
    "Île-de-France",
    "関東",
    "none",
];

pub const RISKS: [&str; 8] = [
    "Churn Risk",
    "Low NPS",
    "Champion Left",
    "Unengaged customer",
    "Payment Overdue",
    "Usage Drop > 30%",
    "Renewal at risk ⚠️",
    "Support escalations",
];

pub const OPPORTUNITIES: [&str; 8] = [
    "Upsell Candidate",
    "Expansion Ready",
    "High NPS",
    "Power users",
    "Referral potential",
    "Cross-sell: Analytics",
    "Multi-team adoption",
    "Renouvellement anticipé",
];

pub const SEGMENTS: [&str; 20] = [
    "Enterprise",
    "Mid-Market",
    "SMB",
    "EMEA",
    "APAC",
    "NA",
    "LATAM",
    "Beta Program",
    "at-risk",
    "VIP",
    "Partner",
    "Öffentlicher Sektor",
    "Santé",
    "教育",
    "Onboarding",
    "Self-serve",
    "Strategic 🌟",
    "Churned Winback",
    "Pilot",
    "Design partners",
];

pub const COMPANY_FIRST: [&str; 30] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Nakatomi",
    "Müller",
    "Société Générale des Eaux",
    "Ørsted",
    "Łódź",
    "Café",
    "Zürcher",
    "São Paulo",
    "Ñoño",
    "株式会社サクラ",
    "北京科技",
    "서울",
    "Δέλτα",
    "Москва",
    "Smith, Jones",
    "The \"Best\"",
    "O'Brien",
    "Blue Sky",
    "Nordic",
];

pub const COMPANY_SECOND: [&str; 15] = [
    "Corp",
    "Inc.",
    "GmbH",
    "S.A.",
    "Ltd",
    "LLC",
    "AG",
    "Oy",
    "AB",
    "& Co",
    "Labs",
    "Systems",
    "Holdings",
    "Group",
    "Technologies",
];

pub const EMOJI: [&str; 4] = [" 🚀", " ✨", " 🍣", " 🦀"];

/// (type, weight in %)
pub const TYPES: [(&str, u64); 5] = [
    ("subscribed customer", 60),
    ("trial", 20),
    ("unqualified trial", 10),
    ("churned", 7),
    ("free", 3),
];

pub const PLANS: [&str; 4] = ["Starter", "Growth", "Business", "Enterprise"];

pub const INDUSTRIES: [&str; 10] = [
    "Software",
    "Fintech",
    "E-commerce",
    "Santé",
    "Logística",
    "Éducation",
    "製造業",
    "Media",
    "Manufacturing",
    "Non-profit",
];

pub const COUNTRIES: [&str; 13] = [
    "US", "GB", "DE", "FR", "JP", "BR", "IN", "CA", "AU", "ES", "NL", "SE", "KR",
];

pub const FIRST_NAMES: [&str; 16] = [
    "ada", "grace", "alan", "linus", "margaret", "ken", "barbara", "dennis", "frances", "tim",
    "sophie", "jose", "li", "yuki", "amara", "olga",
];

pub const LAST_NAMES: [&str; 12] = [
    "lovelace",
    "hopper",
    "turing",
    "torvalds",
    "hamilton",
    "thompson",
    "liskov",
    "ritchie",
    "allen",
    "berners-lee",
    "wilson",
    "tanaka",
];

pub const DOMAINS: [&str; 6] = [
    "example.com",
    "example.org",
    "example.net",
    "mail.example",
    "corp.example",
    "example.co.jp",
];
