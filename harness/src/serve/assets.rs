//! The files of the web UI, in the binary: the pages load nothing from
//! anywhere else (no CDN), so they work offline.

/// The vendored `@xterm/xterm` (see `assets/xterm/README.md`).
pub const XTERM_VERSION: &str = "6.0.0";

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Served under `/-/assets/<name>`.
pub const ASSETS: &[Asset] = &[
    asset!("app.css", CSS),
    asset!("app.js", JS),
    asset!("jobs.js", JS),
    asset!("job.js", JS),
    asset!("terminal.js", JS),
    asset!("xterm/xterm.js", JS),
    asset!("xterm/xterm.css", CSS),
    asset!("xterm/LICENSE", "text/plain; charset=utf-8"),
];

/// A page: the one layout (head, `app.css`, the top bar's `<header>`,
/// `app.js`) around its `<main>` from `assets/<name>.main.html`, with its own
/// title, styles and scripts (from [`ASSETS`]). Put together at compile time.
macro_rules! page {
    ($name:literal, $title:literal, styles: [$($style:literal),*], scripts: [$($script:literal),*]) => {
        Asset {
            name: concat!($name, ".html"),
            content_type: HTML,
            bytes: concat!(
                "<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n",
                "  <title>", $title, " · session-harness</title>\n",
                $("  <link rel=\"stylesheet\" href=\"/-/assets/", $style, "\">\n",)*
                "  <link rel=\"stylesheet\" href=\"/-/assets/app.css\">\n",
                "</head>\n<body>\n  <header id=\"top\"></header>\n",
                include_str!(concat!("assets/", $name, ".main.html")),
                "  <script src=\"/-/assets/app.js\"></script>\n",
                $("  <script src=\"/-/assets/", $script, "\"></script>\n",)*
                "</body>\n</html>\n",
            )
            .as_bytes(),
        }
    };
}

/// The three pages.
pub const JOBS_PAGE: Asset = page!("jobs", "Jobs", styles: [], scripts: ["jobs.js"]);
pub const JOB_PAGE: Asset = page!("job", "Job", styles: [], scripts: ["job.js"]);
pub const TERMINAL_PAGE: Asset = page!(
    "terminal",
    "Terminal",
    styles: ["xterm/xterm.css"],
    scripts: ["xterm/xterm.js", "terminal.js"]
);

pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_scripts_and_styles_only_from_the_binary() {
        for page in [&JOBS_PAGE, &JOB_PAGE, &TERMINAL_PAGE] {
            let html = std::str::from_utf8(page.bytes).unwrap();
            for attribute in ["src=\"", "href=\""] {
                for reference in html.split(attribute).skip(1) {
                    let url = reference.split('"').next().unwrap();
                    let local = url.starts_with("/-/assets/") && find(&url[10..]).is_some();
                    let link = url.starts_with('/') && !url.contains("assets");
                    assert!(
                        local || link,
                        "{}: {url} is not served by the binary",
                        page.name
                    );
                }
            }
        }
        assert!(find("xterm/xterm.js").unwrap().bytes.len() > 100_000);
    }
}
