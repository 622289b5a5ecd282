//! `schema-facts`: prints what a set of `.capnp` files puts on the wire,
//! one fact per line, sorted: every node's id and name, struct layouts
//! (sizes, field names, ordinals, offsets, types, default values), enum
//! values, interface methods (ordinals, parameter and result structs),
//! constants, and every annotation with its value. Comments and source
//! positions are left out, so two sets of schemas that a peer cannot tell
//! apart print the same lines.
//!
//! ```text
//! schema-facts SCHEMA.capnp...
//! ```
//!
//! `interop/check-bitcoin-schemas.sh` builds it in a throwaway crate (it is
//! not a target of this crate, to keep the capnp compiler out of its
//! dependencies) and diffs Bitcoin Core's schemas against ours.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use capnp::schema_capnp::{brand, field, node, type_, value};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: schema-facts SCHEMA.capnp...");
        return ExitCode::from(2);
    }
    match facts(&files) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("schema-facts: {e}");
            ExitCode::FAILURE
        }
    }
}

fn facts(files: &[String]) -> Result<BTreeSet<String>> {
    let mut builder = multiprocess_proxy_build::Builder::new();
    for file in files {
        builder = builder.file(file);
    }
    let request = builder.compile_request()?;
    let mut slice = request.as_slice();
    let message = capnp::serialize::read_message_from_flat_slice(
        &mut slice,
        capnp::message::ReaderOptions::new(),
    )?;
    let request: capnp::schema_capnp::code_generator_request::Reader<'_> = message.get_root()?;
    let mut lines = BTreeSet::new();
    for node in request.get_nodes()? {
        node_facts(node, &mut lines)?;
    }
    Ok(lines)
}

/// `path/to/mining.capnp:Mining.getTip$Params` as `mining.capnp:Mining.getTip$Params`.
fn name(node: node::Reader<'_>) -> Result<String> {
    let full = node.get_display_name()?.to_str()?;
    let (file, rest) = full.split_once(':').unwrap_or((full, ""));
    let file = file.rsplit('/').next().unwrap_or(file);
    Ok(if rest.is_empty() {
        file.to_string()
    } else {
        format!("{file}:{rest}")
    })
}

fn node_facts(node: node::Reader<'_>, lines: &mut BTreeSet<String>) -> Result<()> {
    let id = format!("{:#018x}", node.get_id());
    let mut head = format!("{id} {} scope={:#018x}", name(node)?, node.get_scope_id());
    if node.get_is_generic() {
        let params: Vec<String> = node
            .get_parameters()?
            .iter()
            .map(|p| Ok(p.get_name()?.to_str()?.to_string()))
            .collect::<Result<_>>()?;
        let _ = write!(head, " generic({})", params.join(", "));
    }
    for nested in node.get_nested_nodes()? {
        lines.insert(format!(
            "{id} nested {} = {:#018x}",
            nested.get_name()?.to_str()?,
            nested.get_id()
        ));
    }
    annotations(&id, node.get_annotations()?, lines)?;
    match node.which()? {
        node::File(()) => {
            lines.insert(format!("{head} file"));
        }
        node::Struct(s) => {
            lines.insert(format!(
                "{head} struct data={} pointers={} group={} discriminants={}@{}",
                s.get_data_word_count(),
                s.get_pointer_count(),
                s.get_is_group(),
                s.get_discriminant_count(),
                s.get_discriminant_offset()
            ));
            for f in s.get_fields()? {
                field_facts(&id, f, lines)?;
            }
        }
        node::Enum(e) => {
            lines.insert(format!("{head} enum"));
            for (i, enumerant) in e.get_enumerants()?.iter().enumerate() {
                let at = format!("{id} enumerant {i} {}", enumerant.get_name()?.to_str()?);
                annotations(&at, enumerant.get_annotations()?, lines)?;
                lines.insert(format!("{at} order={}", enumerant.get_code_order()));
            }
        }
        node::Interface(interface) => {
            lines.insert(format!("{head} interface"));
            for superclass in interface.get_superclasses()? {
                lines.insert(format!(
                    "{id} extends {:#018x}{}",
                    superclass.get_id(),
                    brand_text(superclass.get_brand()?)?
                ));
            }
            for (i, method) in interface.get_methods()?.iter().enumerate() {
                let at = format!("{id} method @{i} {}", method.get_name()?.to_str()?);
                annotations(&at, method.get_annotations()?, lines)?;
                lines.insert(format!(
                    "{at} order={} params={:#018x}{} results={:#018x}{} implicit={}",
                    method.get_code_order(),
                    method.get_param_struct_type(),
                    brand_text(method.get_param_brand()?)?,
                    method.get_result_struct_type(),
                    brand_text(method.get_result_brand()?)?,
                    method.get_implicit_parameters()?.len()
                ));
            }
        }
        node::Const(c) => {
            lines.insert(format!(
                "{head} const {} = {}",
                type_text(c.get_type()?)?,
                value_text(c.get_value()?)?
            ));
        }
        node::Annotation(a) => {
            let targets = [
                ("file", a.get_targets_file()),
                ("const", a.get_targets_const()),
                ("enum", a.get_targets_enum()),
                ("enumerant", a.get_targets_enumerant()),
                ("struct", a.get_targets_struct()),
                ("field", a.get_targets_field()),
                ("union", a.get_targets_union()),
                ("group", a.get_targets_group()),
                ("interface", a.get_targets_interface()),
                ("method", a.get_targets_method()),
                ("param", a.get_targets_param()),
                ("annotation", a.get_targets_annotation()),
            ];
            let on: Vec<&str> = targets.iter().filter(|t| t.1).map(|t| t.0).collect();
            lines.insert(format!(
                "{head} annotation {} on {}",
                type_text(a.get_type()?)?,
                on.join(",")
            ));
        }
    }
    Ok(())
}

fn field_facts(id: &str, f: field::Reader<'_>, lines: &mut BTreeSet<String>) -> Result<()> {
    let ordinal = match f.get_ordinal().which()? {
        field::ordinal::Implicit(()) => "implicit".to_string(),
        field::ordinal::Explicit(n) => format!("@{n}"),
    };
    let at = format!("{id} field {} {ordinal}", f.get_name()?.to_str()?);
    annotations(&at, f.get_annotations()?, lines)?;
    let kind = match f.which()? {
        field::Slot(slot) => format!(
            "slot offset={} {} default={}{}",
            slot.get_offset(),
            type_text(slot.get_type()?)?,
            value_text(slot.get_default_value()?)?,
            if slot.get_had_explicit_default() {
                " explicit"
            } else {
                ""
            }
        ),
        field::Group(group) => format!("group {:#018x}", group.get_type_id()),
    };
    lines.insert(format!(
        "{at} order={} discriminant={} {kind}",
        f.get_code_order(),
        f.get_discriminant_value()
    ));
    Ok(())
}

fn annotations(
    at: &str,
    list: capnp::struct_list::Reader<'_, capnp::schema_capnp::annotation::Owned>,
    lines: &mut BTreeSet<String>,
) -> Result<()> {
    for a in list {
        lines.insert(format!(
            "{at} ${:#018x}{} = {}",
            a.get_id(),
            brand_text(a.get_brand()?)?,
            value_text(a.get_value()?)?
        ));
    }
    Ok(())
}

fn brand_text(b: brand::Reader<'_>) -> Result<String> {
    let mut out = String::new();
    for scope in b.get_scopes()? {
        match scope.which()? {
            brand::scope::Bind(bindings) => {
                let mut bound = Vec::new();
                for binding in bindings? {
                    bound.push(match binding.which()? {
                        brand::binding::Unbound(()) => "_".to_string(),
                        brand::binding::Type(t) => type_text(t?)?,
                    });
                }
                let _ = write!(out, "<{:#x}: {}>", scope.get_scope_id(), bound.join(", "));
            }
            brand::scope::Inherit(()) => {
                let _ = write!(out, "<{:#x}: inherit>", scope.get_scope_id());
            }
        }
    }
    Ok(out)
}

fn type_text(t: type_::Reader<'_>) -> Result<String> {
    use type_::Which as T;
    Ok(match t.which()? {
        T::Void(()) => "Void".into(),
        T::Bool(()) => "Bool".into(),
        T::Int8(()) => "Int8".into(),
        T::Int16(()) => "Int16".into(),
        T::Int32(()) => "Int32".into(),
        T::Int64(()) => "Int64".into(),
        T::Uint8(()) => "UInt8".into(),
        T::Uint16(()) => "UInt16".into(),
        T::Uint32(()) => "UInt32".into(),
        T::Uint64(()) => "UInt64".into(),
        T::Float32(()) => "Float32".into(),
        T::Float64(()) => "Float64".into(),
        T::Text(()) => "Text".into(),
        T::Data(()) => "Data".into(),
        T::List(l) => format!("List({})", type_text(l.get_element_type()?)?),
        T::Enum(e) => format!(
            "enum {:#018x}{}",
            e.get_type_id(),
            brand_text(e.get_brand()?)?
        ),
        T::Struct(s) => format!(
            "struct {:#018x}{}",
            s.get_type_id(),
            brand_text(s.get_brand()?)?
        ),
        T::Interface(i) => format!(
            "interface {:#018x}{}",
            i.get_type_id(),
            brand_text(i.get_brand()?)?
        ),
        T::AnyPointer(a) => {
            use type_::any_pointer::Which as A;
            match a.which()? {
                A::Unconstrained(u) => {
                    use type_::any_pointer::unconstrained::Which as U;
                    match u.which()? {
                        U::AnyKind(()) => "AnyPointer".into(),
                        U::Struct(()) => "AnyStruct".into(),
                        U::List(()) => "AnyList".into(),
                        U::Capability(()) => "Capability".into(),
                    }
                }
                A::Parameter(p) => format!(
                    "param {}#{}",
                    format_args!("{:#018x}", p.get_scope_id()),
                    p.get_parameter_index()
                ),
                A::ImplicitMethodParameter(p) => {
                    format!("method param #{}", p.get_parameter_index())
                }
            }
        }
    })
}

fn value_text(v: value::Reader<'_>) -> Result<String> {
    use value::Which as V;
    Ok(match v.which()? {
        V::Void(()) => "void".into(),
        V::Bool(b) => b.to_string(),
        V::Int8(n) => n.to_string(),
        V::Int16(n) => n.to_string(),
        V::Int32(n) => n.to_string(),
        V::Int64(n) => n.to_string(),
        V::Uint8(n) => n.to_string(),
        V::Uint16(n) => n.to_string(),
        V::Uint32(n) => n.to_string(),
        V::Uint64(n) => n.to_string(),
        // Bits, so that NaNs and -0.0 compare as the wire sees them.
        V::Float32(f) => format!("{f:e} ({:#x})", f.to_bits()),
        V::Float64(f) => format!("{f:e} ({:#x})", f.to_bits()),
        V::Text(t) => format!("{:?}", t?.to_str()?),
        V::Data(d) => format!("data {:02x?}", d?),
        V::Enum(n) => format!("enumerant {n}"),
        V::Interface(()) => "null capability".into(),
        V::List(p) | V::Struct(p) | V::AnyPointer(p) => {
            // A pointer default: its words, as a peer would read them.
            let mut message = capnp::message::Builder::new_default();
            message.set_root_canonical(p)?;
            let words = capnp::serialize::write_message_to_words(&message);
            format!("pointer {:02x?}", words)
        }
    })
}
