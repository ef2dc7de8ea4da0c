//! Renders a bird.conf template (minijinja) with a [`RenderContext`].

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use super::context::RenderContext;
use crate::error::{Error, Result};

/// The default template, shipped with the binary (the chart's ConfigMap carries the same text).
pub const DEFAULT_TEMPLATE: &str = include_str!("../../templates/bird.conf.tmpl");

/// Renders `template`. Unknown variables are errors (a typo in a user template must not
/// silently drop a peer), and block tags on lines of their own leave no blank lines.
pub fn render(template: &str, ctx: &RenderContext) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| Error::Template(e.to_string()))?;
    env.set_syntax(syntax);
    let tmpl = env
        .template_from_named_str("bird.conf.tmpl", template)
        .map_err(template_error)?;
    tmpl.render(Value::from(Serde(ctx))).map_err(template_error)
}

fn template_error(e: minijinja::Error) -> Error {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::Template(text)
}

#[cfg(test)]
mod tests;
