//! Closed sets of values chosen by name in the config file (`trust = "restart"`).
//!
//! A set is declared once with `named_enum!`: the enum and its names in one place.
//! Parsing, the canonical name (written back by `translate`, listed in messages) and the
//! "expected …" list of a validation message all read that one table, so they cannot
//! drift apart (as strum's `EnumString` / `IntoStaticStr` derives do it, without the
//! dependency).

/// A closed set of values written by name. Implemented by `named_enum!`.
pub trait Named: Copy + Eq + 'static {
    /// What a value is called in a message: `unknown trust "x"`.
    const WHAT: &'static str;
    /// Every accepted name with its value: each value's canonical name first, then its
    /// aliases (accepted, never listed).
    const NAMES: &'static [(&'static str, Self)];

    /// The canonical name.
    fn name(self) -> &'static str;

    /// The value called `name`: exact and case-sensitive, as a serde enum is.
    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, value)| value)
    }

    /// The canonical names quoted, for a message: `"a", "b" or "c"`.
    fn expected() -> String {
        let names: Vec<String> = Self::NAMES
            .iter()
            .filter(|&&(n, value)| n == value.name())
            .map(|(n, _)| format!("{n:?}"))
            .collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            Some((last, _)) => last.clone(),
            None => String::new(),
        }
    }
}

/// Declares a fieldless enum with the config name of each variant, and its [`Named`]
/// impl:
///
/// ```text
/// named_enum! {
///     /// How the sampling decision is made.
///     #[derive(Debug, Clone, Copy, PartialEq, Eq)]
///     pub enum Strategy("strategy") {
///         /// Honour the incoming decision.
///         Parent = "parent",
///         Http1 = "http1" | "http/1.1", // an alias after `|`
///     }
/// }
/// ```
///
/// `name` is a `match`, so a variant without a name does not compile.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $ty:ident ($what:literal) {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $name:literal $(| $alias:literal)*
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $ty {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $crate::model::Named for $ty {
            const WHAT: &'static str = $what;
            const NAMES: &'static [(&'static str, Self)] = &[
                $( ($name, $ty::$variant), $( ($alias, $ty::$variant), )* )+
            ];

            fn name(self) -> &'static str {
                match self {
                    $( $ty::$variant => $name, )+
                }
            }
        }
    };
}
pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    use super::*;

    named_enum! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Colour("colour") {
            Red = "red",
            Green = "green" | "verde",
            Blue = "blue",
        }
    }

    named_enum! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Only("only") {
            One = "one",
        }
    }

    #[test]
    fn names_parse_and_print_from_one_table() {
        assert_eq!(Colour::from_name("green"), Some(Colour::Green));
        assert_eq!(Colour::from_name("verde"), Some(Colour::Green), "alias");
        assert_eq!(Colour::from_name("Green"), None, "case-sensitive");
        assert_eq!(Colour::from_name(""), None);
        assert_eq!(Colour::Green.name(), "green", "the canonical name");
        assert_eq!(Colour::WHAT, "colour");
        for &(name, value) in Colour::NAMES {
            assert_eq!(Colour::from_name(name), Some(value));
        }
    }

    #[test]
    fn expected_lists_the_canonical_names_only() {
        assert_eq!(Colour::expected(), r#""red", "green" or "blue""#);
        assert_eq!(Only::expected(), r#""one""#);
    }
}
