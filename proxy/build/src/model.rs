//! What the generator knows of a schema: names and kinds of its nodes, and
//! libmultiprocess's annotations, read from a `CodeGeneratorRequest`.

use std::collections::HashMap;

use capnp::schema_capnp::{annotation, field, node, type_};

/// The file id of `mp/proxy.capnp` (libmultiprocess's).
pub(crate) const PROXY_FILE_ID: u64 = 0xcc31_6e3f_71a0_40fb;

/// Rust's keywords, which capnpc (and so we) suffix with `_`.
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "alignof", "as", "be", "become", "box", "break", "const", "continue", "crate",
    "do", "else", "enum", "extern", "false", "final", "fn", "for", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "offsetof", "once", "override", "priv", "proc",
    "pub", "pure", "ref", "return", "self", "sizeof", "static", "struct", "super", "trait", "true",
    "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// `camelCase` as capnpc writes it in snake case (`getTxID` → `get_tx_i_d`).
pub(crate) fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// `camelCase` in snake case for the Rust names we choose (methods,
/// fields): a run of capitals is one word (`getTxID` → `get_tx_id`,
/// `HTTPServer` → `http_server`).
pub(crate) fn rust_snake(camel: &str) -> String {
    let chars: Vec<char> = camel.chars().collect();
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev_lower = chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit();
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = chars[i - 1].is_uppercase();
            if prev_lower || (prev_upper && next_lower) {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Whether `name` can be a Rust identifier.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// A snake-case name usable as a Rust identifier (keywords get `_`).
pub(crate) fn ident(snake_name: &str) -> String {
    if RUST_KEYWORDS.contains(&snake_name) {
        format!("{snake_name}_")
    } else {
        snake_name.to_string()
    }
}

/// `camelCase` to `CamelCase`.
pub(crate) fn pascal(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Where a struct, interface or enum of the schema lives.
#[derive(Debug, Clone)]
pub(crate) struct NodeName {
    /// capnpc's path: the module of a struct or interface
    /// (`crate::wallet_capnp::tx`), the type of an enum.
    pub(crate) capnp: String,
    /// Our generated module for its file (`crate::wallet`).
    pub(crate) proxy_mod: String,
    /// Our Rust name for it (`Tx`; nested names are joined: `OuterInner`).
    pub(crate) rust: String,
    /// The name in traces and docs (`Wallet`, `Outer.Inner`).
    pub(crate) display: String,
    /// The file it is declared in.
    pub(crate) file_id: u64,
    /// For a generic struct, which of its parameters its fields use: the
    /// Rust struct has only those (Bitcoin Core's `ResultVoid(Value)` uses
    /// none, and its users bind none).
    pub(crate) used_params: Vec<bool>,
}

/// The annotations of `mp/proxy.capnp`, by id.
#[derive(Debug, Default)]
pub(crate) struct ProxyAnnotations {
    pub(crate) wrap: Option<u64>,
    pub(crate) name: Option<u64>,
    pub(crate) skip: Option<u64>,
    pub(crate) exception: Option<u64>,
    pub(crate) thread_map: Option<u64>,
    pub(crate) context: Option<u64>,
}

/// The schema as the generator sees it.
pub(crate) struct Schema<'a> {
    pub(crate) nodes: HashMap<u64, node::Reader<'a>>,
    pub(crate) names: HashMap<u64, NodeName>,
    pub(crate) proxy: ProxyAnnotations,
    /// Each file's module stem (`wallet` for `wallet.capnp`).
    pub(crate) file_stems: HashMap<u64, String>,
    /// The schema's doc comments: a node's own, and its members' (fields,
    /// enumerants or methods, in the node's order).
    pub(crate) docs: HashMap<u64, (String, Vec<String>)>,
}

/// Where the generated modules sit: `crate::` plus the parent modules.
pub(crate) fn module_root(parent: &[String]) -> String {
    let mut root = "crate".to_string();
    for module in parent {
        root.push_str("::");
        root.push_str(module);
    }
    root
}

/// A file's module stem: its name without directories or `.capnp`, with
/// what is not an identifier character made `_` (as capnpc does).
pub(crate) fn file_stem(filename: &str) -> String {
    let base = filename.rsplit('/').next().unwrap_or(filename);
    let base = base.strip_suffix(".capnp").unwrap_or(base);
    base.chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
}

impl<'a> Schema<'a> {
    pub(crate) fn new(
        request: capnp::schema_capnp::code_generator_request::Reader<'a>,
        parent: &[String],
    ) -> capnp::Result<Self> {
        let mut nodes = HashMap::new();
        for node in request.get_nodes()? {
            nodes.insert(node.get_id(), node);
        }
        let root = module_root(parent);
        let mut names = HashMap::new();
        let mut file_stems = HashMap::new();
        for node in nodes.values() {
            if let Ok(node::File(())) = node.which() {
                let stem = file_stem(node.get_display_name()?.to_str()?);
                file_stems.insert(node.get_id(), stem.clone());
                let capnp = format!("{root}::{stem}_capnp");
                let proxy_mod = format!("{root}::{}", ident(&stem));
                name_nested(
                    &nodes,
                    &mut names,
                    *node,
                    &capnp,
                    &proxy_mod,
                    "",
                    "",
                    node.get_id(),
                )?;
            }
        }
        let mut proxy = ProxyAnnotations::default();
        for node in nodes.values() {
            if node.get_scope_id() != PROXY_FILE_ID {
                continue;
            }
            let display = node.get_display_name()?.to_str()?;
            let local = &display[node.get_display_name_prefix_length() as usize..];
            let id = Some(node.get_id());
            match local {
                "wrap" => proxy.wrap = id,
                "name" => proxy.name = id,
                "skip" => proxy.skip = id,
                "exception" => proxy.exception = id,
                "ThreadMap" => proxy.thread_map = id,
                "Context" => proxy.context = id,
                _ => {}
            }
        }
        let mut docs = HashMap::new();
        if request.has_source_info() {
            for info in request.get_source_info()? {
                let own = info.get_doc_comment()?.to_string()?;
                let members = info
                    .get_members()?
                    .iter()
                    .map(|m| Ok(m.get_doc_comment()?.to_string()?))
                    .collect::<capnp::Result<Vec<String>>>()?;
                docs.insert(info.get_id(), (own, members));
            }
        }
        Ok(Self {
            nodes,
            names,
            proxy,
            file_stems,
            docs,
        })
    }

    /// Node `id`'s doc comment, if it has one.
    pub(crate) fn doc(&self, id: u64) -> Option<&str> {
        let (own, _) = self.docs.get(&id)?;
        let own = own.trim();
        (!own.is_empty()).then_some(own)
    }

    /// The doc comment of member `index` of node `id`, if it has one.
    pub(crate) fn member_doc(&self, id: u64, index: usize) -> Option<&str> {
        let (_, members) = self.docs.get(&id)?;
        let doc = members.get(index)?.trim();
        (!doc.is_empty()).then_some(doc)
    }

    pub(crate) fn node(&self, id: u64) -> capnp::Result<node::Reader<'a>> {
        self.nodes
            .get(&id)
            .copied()
            .ok_or_else(|| capnp::Error::failed(format!("node {id:#x} is not in the request")))
    }

    pub(crate) fn name(&self, id: u64) -> capnp::Result<&NodeName> {
        self.names
            .get(&id)
            .ok_or_else(|| capnp::Error::failed(format!("node {id:#x} has no name")))
    }

    /// The text of annotation `id` on a list of annotations, if there.
    pub(crate) fn text_annotation(
        annotations: capnp::struct_list::Reader<'a, annotation::Owned>,
        id: Option<u64>,
    ) -> capnp::Result<Option<String>> {
        let Some(id) = id else { return Ok(None) };
        for annotation in annotations {
            if annotation.get_id() == id {
                if let capnp::schema_capnp::value::Text(text) = annotation.get_value()?.which()? {
                    return Ok(Some(text?.to_string()?));
                }
                return Ok(Some(String::new()));
            }
        }
        Ok(None)
    }

    /// Whether annotation `id` is on a list of annotations.
    pub(crate) fn has_annotation(
        annotations: capnp::struct_list::Reader<'a, annotation::Owned>,
        id: Option<u64>,
    ) -> bool {
        id.is_some_and(|id| annotations.iter().any(|a| a.get_id() == id))
    }

    /// Whether `ty` is `Proxy.Context`.
    pub(crate) fn is_context(&self, ty: type_::Reader<'_>) -> capnp::Result<bool> {
        Ok(match ty.which()? {
            type_::Struct(s) => Some(s.get_type_id()) == self.proxy.context,
            _ => false,
        })
    }

    /// Whether `ty` is `Proxy.ThreadMap`.
    pub(crate) fn is_thread_map(&self, ty: type_::Reader<'_>) -> capnp::Result<bool> {
        Ok(match ty.which()? {
            type_::Interface(i) => Some(i.get_type_id()) == self.proxy.thread_map,
            _ => false,
        })
    }

    /// The Rust name of a field: its `$Proxy.name`, else its name in snake
    /// case.
    /// A `$Proxy.name` that is not an identifier (Bitcoin Core's
    /// `node.capnp` has `"m_transport_type;"`) is ignored: it names a C++
    /// member, and the field's own name serves.
    pub(crate) fn field_name(&self, field: field::Reader<'a>) -> capnp::Result<String> {
        let name = match Self::text_annotation(field.get_annotations()?, self.proxy.name)? {
            Some(name) if is_identifier(&name) => name,
            _ => rust_snake(field.get_name()?.to_str()?),
        };
        Ok(ident(&name))
    }
}

/// Which of generic struct `node`'s parameters its fields use.
fn used_params(node: node::Reader<'_>) -> capnp::Result<Vec<bool>> {
    let count = node.get_parameters()?.len() as usize;
    let mut used = vec![false; count];
    if let node::Struct(st) = node.which()? {
        for field in st.get_fields()? {
            if let field::Slot(slot) = field.which()? {
                mark_params(slot.get_type()?, node.get_id(), &mut used)?;
            }
        }
    }
    Ok(used)
}

/// Marks in `used` the parameters of scope `scope` that `ty` names.
fn mark_params(ty: type_::Reader<'_>, scope: u64, used: &mut [bool]) -> capnp::Result<()> {
    match ty.which()? {
        type_::List(list) => mark_params(list.get_element_type()?, scope, used)?,
        type_::AnyPointer(any) => {
            if let type_::any_pointer::Parameter(p) = any.which()? {
                if p.get_scope_id() == scope {
                    if let Some(slot) = used.get_mut(usize::from(p.get_parameter_index())) {
                        *slot = true;
                    }
                }
            }
        }
        type_::Struct(s) => {
            for brand_scope in s.get_brand()?.get_scopes()? {
                if let capnp::schema_capnp::brand::scope::Bind(binds) = brand_scope.which()? {
                    for bind in binds? {
                        if let capnp::schema_capnp::brand::binding::Type(t) = bind.which()? {
                            mark_params(t?, scope, used)?;
                        }
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Names the nodes nested in `node`, recursively.
#[allow(clippy::too_many_arguments)]
fn name_nested(
    nodes: &HashMap<u64, node::Reader<'_>>,
    names: &mut HashMap<u64, NodeName>,
    node: node::Reader<'_>,
    capnp: &str,
    proxy_mod: &str,
    rust_prefix: &str,
    display_prefix: &str,
    file_id: u64,
) -> capnp::Result<()> {
    for nested in node.get_nested_nodes()? {
        let name = nested.get_name()?.to_str()?;
        let Some(child) = nodes.get(&nested.get_id()) else {
            continue;
        };
        let rust = format!("{rust_prefix}{}", pascal(name));
        let display = if display_prefix.is_empty() {
            name.to_string()
        } else {
            format!("{display_prefix}.{name}")
        };
        let (capnp_path, module) = match child.which()? {
            node::Enum(_) => (format!("{capnp}::{}", pascal(name)), None),
            node::Struct(_) | node::Interface(_) => {
                let module = format!("{capnp}::{}", ident(&snake(name)));
                (module.clone(), Some(module))
            }
            _ => continue,
        };
        names.insert(
            nested.get_id(),
            NodeName {
                capnp: capnp_path,
                proxy_mod: proxy_mod.to_string(),
                rust: rust.clone(),
                display: display.clone(),
                file_id,
                used_params: used_params(*child)?,
            },
        );
        if let Some(module) = module {
            name_nested(
                nodes, names, *child, &module, proxy_mod, &rust, &display, file_id,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_names_keep_acronyms_whole_and_capnpc_names_as_capnpc_makes_them() {
        assert_eq!(
            rust_snake("getTransactionsByTxID"),
            "get_transactions_by_tx_id"
        );
        assert_eq!(rust_snake("HTTPServer"), "http_server");
        assert_eq!(rust_snake("hasResult"), "has_result");
        assert_eq!(rust_snake("v1"), "v1");
        assert_eq!(snake("getTransactionsByTxID"), "get_transactions_by_tx_i_d");
        assert!(is_identifier("use_mempool") && !is_identifier("m_transport_type;"));
        assert_eq!(ident("fn"), "fn_");
    }
}
