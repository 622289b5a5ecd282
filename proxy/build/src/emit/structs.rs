//! Structs, unions and enums: their Rust types and their `Wire` impls.

use super::*;

impl<'a> FileGen<'_, 'a> {
    /// Boxes the fields of struct `owner` whose struct contains `owner`
    /// again, directly or through other structs' fields (not through lists,
    /// which are on the heap already): `Option<Box<S>>`.
    pub(super) fn box_recursive(&self, owner: u64, slots: &mut [Slot]) -> capnp::Result<()> {
        for slot in slots.iter_mut() {
            let target = match &slot.ty {
                Ty::Struct(n) | Ty::Generic(n, _) if slot.has.is_none() => self.node_id(n)?,
                _ => continue,
            };
            let mut seen = Vec::new();
            if self.reaches(target, owner, &mut seen)? {
                slot.ty = Ty::Boxed(Box::new(slot.ty.clone()));
            }
        }
        Ok(())
    }

    /// Whether struct `from` holds struct `target` in a field, directly or
    /// through other structs' fields.
    pub(super) fn reaches(
        &self,
        from: u64,
        target: u64,
        seen: &mut Vec<u64>,
    ) -> capnp::Result<bool> {
        if from == target {
            return Ok(true);
        }
        if seen.contains(&from) {
            return Ok(false);
        }
        seen.push(from);
        let node::Struct(st) = self.schema.node(from)?.which()? else {
            return Ok(false);
        };
        for field in st.get_fields()? {
            let field::Slot(slot) = field.which()? else {
                continue;
            };
            if let capnp::schema_capnp::type_::Struct(s) = slot.get_type()?.which()? {
                if self.reaches(s.get_type_id(), target, seen)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Records the generic instances in `ty`.
    pub(super) fn note_instances(&self, ty: &Ty) {
        match ty {
            Ty::Generic(_, args) => {
                let key = ty.owned();
                let mut instances = self.instances.borrow_mut();
                if !instances.iter().any(|t| t.owned() == key) {
                    instances.push(ty.clone());
                }
                drop(instances);
                for arg in args {
                    self.note_instances(arg);
                }
            }
            Ty::List(inner) => self.note_instances(inner),
            _ => {}
        }
    }

    pub(super) fn structure(&mut self, id: u64, node: node::Reader<'a>) -> capnp::Result<()> {
        let name = self.schema.name(id)?.clone();
        let node::Struct(st) = node.which()? else {
            return Ok(());
        };
        let (mut slots, _, _) = self.slots(st.get_fields()?, false, &name.display)?;
        self.box_recursive(id, &mut slots)?;
        // The parameters the fields use (an unused one has no Rust type).
        let params: Vec<String> = node
            .get_parameters()?
            .iter()
            .zip(&name.used_params)
            .filter(|(_, used)| **used)
            .map(|(p, _)| p.get_name().and_then(|n| Ok(n.to_string()?)))
            .collect::<capnp::Result<_>>()?;
        let generics = if params.is_empty() {
            String::new()
        } else {
            format!("<{}>", params.join(", "))
        };
        // Default: the schema's defaults; derived where those are the
        // types' own.
        let mut fields: Vec<field::Reader<'a>> = st.get_fields()?.iter().collect();
        fields.sort_by_key(|f| f.get_code_order());
        let mut defaults = Vec::new();
        for slot in &slots {
            let default = if slot.has.is_some() {
                "None".to_string()
            } else {
                let field = fields.iter().find(|f| {
                    f.get_name()
                        .ok()
                        .and_then(|n| n.to_str().ok())
                        .map(snake)
                        .as_deref()
                        == Some(&slot.accessor)
                });
                match field {
                    Some(f) => self.default_value(&slot.ty, *f)?,
                    None => "Default::default()".to_string(),
                }
            };
            defaults.push(default);
        }
        let derived = defaults
            .iter()
            .all(|d| d == "Default::default()" || d == "None");
        let mut o = String::new();
        if is_union(st)? {
            let _ = writeln!(
                o,
                "/// The capnp struct `{}`: a union, one of its fields.",
                name.display
            );
            if let Some(doc) = self.schema.doc(id) {
                let _ = write!(o, "///\n{}", doc_lines(doc, ""));
            }
            let _ = writeln!(
                o,
                "{}\npub enum {}{generics} {{",
                derives(&slots, false),
                name.rust
            );
            for slot in &slots {
                let _ = writeln!(o, "    /// `{}`.", slot.accessor);
                match slot.ty {
                    Ty::Void => {
                        let _ = writeln!(o, "    {},", variant(slot));
                    }
                    _ => {
                        let _ = writeln!(o, "    {}({}),", variant(slot), slot_owned(slot));
                    }
                }
            }
            let _ = writeln!(o, "}}\n");
            if !node.get_is_generic() {
                o.push_str(&self.wire_impl(&Ty::Struct(name.clone()), &slots)?);
            }
            self.out.push_str(&o);
            return Ok(());
        }
        let _ = writeln!(o, "/// The capnp struct `{}`.", name.display);
        if let Some(doc) = self.schema.doc(id) {
            let _ = write!(o, "///\n{}", doc_lines(doc, ""));
        }
        // A capability has no default, no equality, and a closure no Debug.
        let holds_capability = slots.iter().any(|s| s.ty.holds(&|t| t.is_capability()));
        let _ = writeln!(
            o,
            "{}\npub struct {}{generics} {{",
            derives(&slots, derived),
            name.rust
        );
        let field_names: Vec<String> = st
            .get_fields()?
            .iter()
            .map(|f| f.get_name().and_then(|n| Ok(snake(n.to_str()?))))
            .collect::<capnp::Result<_>>()?;
        for slot in &slots {
            let doc = field_names
                .iter()
                .position(|n| *n == slot.accessor)
                .and_then(|index| self.schema.member_doc(id, index));
            match doc {
                Some(doc) => {
                    let _ = write!(o, "{}", doc_lines(doc, "    "));
                }
                None => {
                    let _ = writeln!(o, "    /// `{}`.", slot.accessor);
                }
            }
            let _ = writeln!(o, "    pub {}: {},", slot.name, slot_owned(slot));
        }
        let _ = writeln!(o, "}}\n");
        if !derived && !holds_capability {
            let bounds = if params.is_empty() {
                String::new()
            } else {
                format!(
                    "<{}>",
                    params
                        .iter()
                        .map(|p| format!("{p}: Default"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(
                o,
                "impl{bounds} Default for {}{generics} {{\n    fn default() -> Self {{\n        Self {{",
                name.rust
            );
            for (slot, default) in slots.iter().zip(&defaults) {
                let _ = writeln!(o, "            {}: {default},", slot.name);
            }
            let _ = writeln!(o, "        }}\n    }}\n}}\n");
        }
        // A generic struct's impls are per instance (`instance_impl`).
        if !node.get_is_generic() {
            o.push_str(&self.wire_impl(&Ty::Struct(name.clone()), &slots)?);
        }
        self.out.push_str(&o);
        Ok(())
    }

    /// The `Wire` impl of a struct, or of one instance of a generic struct.
    pub(super) fn wire_impl(&self, ty: &Ty, slots: &[Slot]) -> capnp::Result<String> {
        let (Ty::Struct(name) | Ty::Generic(name, _)) = ty else {
            return Ok(String::new());
        };
        let node::Struct(st) = self.schema.node(self.node_id(name)?)?.which()? else {
            return Ok(String::new());
        };
        if is_union(st)? {
            return self.union_wire_impl(ty, name, slots);
        }
        let p = self.p();
        let e = self.emit();
        let rust = ty.owned();
        let capnp = ty.capnp_owned()?;
        let builder = format!("<Self::Capnp as {p}::capnp::traits::Owned>::Builder<'_>");
        let reader = format!("<Self::Capnp as {p}::capnp::traits::Owned>::Reader<'_>");
        let mut o = String::new();
        let _ = writeln!(
            o,
            "impl {p}::Wire for {rust} {{\n    type Capnp = {capnp};\n"
        );
        // A recursive struct may hand its connection only to itself.
        let recursion = if slots.iter().any(|s| matches!(s.ty, Ty::Boxed(_))) {
            "    #[allow(clippy::only_used_in_recursion)]\n"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "{recursion}    fn write(&self, mut builder: {builder}, mp_ctx: &{p}::ServeContext) -> {p}::capnp::Result<()> {{"
        );
        let uses_ctx = slots.iter().any(|s| s.ty.needs_ctx());
        if !uses_ctx {
            let _ = writeln!(o, "        let _ = mp_ctx;");
        }
        if slots.is_empty() {
            let _ = writeln!(o, "        let _ = &mut builder;");
        }
        for slot in slots {
            let input = slot.ty.input_from_ref(&format!("&self.{}", slot.name));
            let opt = format!("&self.{}", slot.name);
            let _ = write!(
                o,
                "{}",
                e.set_slot(
                    slot,
                    "builder",
                    if slot.has.is_some() { &opt } else { &input },
                    |v| slot.ty.input_from_ref(v)
                )
            );
        }
        let _ = writeln!(o, "        Ok(())\n    }}\n");
        let _ = writeln!(
            o,
            "{recursion}    fn read(reader: {reader}, mp_ctx: &{p}::ServeContext) -> {p}::capnp::Result<Self> {{"
        );
        if !uses_ctx {
            let _ = writeln!(o, "        let _ = mp_ctx;");
        }
        if slots.is_empty() {
            let _ = writeln!(o, "        let _ = reader;");
        }
        let _ = writeln!(o, "        Ok(Self {{");
        for slot in slots {
            let _ = writeln!(
                o,
                "            {}: {},",
                slot.name,
                e.get_slot(slot, "reader", &slot.accessor)
            );
        }
        let _ = writeln!(o, "        }})\n    }}\n}}\n");
        // Here the connection is the `&ServeContext` parameter itself.
        Ok(o.replace("&mp_ctx", "mp_ctx"))
    }

    /// The `Wire` impl of a struct that is one union: a Rust enum.
    pub(super) fn union_wire_impl(
        &self,
        ty: &Ty,
        name: &NodeName,
        slots: &[Slot],
    ) -> capnp::Result<String> {
        let p = self.p();
        let e = self.emit();
        let rust = ty.owned();
        let capnp = ty.capnp_owned()?;
        let builder = format!("<Self::Capnp as {p}::capnp::traits::Owned>::Builder<'_>");
        let reader = format!("<Self::Capnp as {p}::capnp::traits::Owned>::Reader<'_>");
        let uses_ctx = slots.iter().any(|s| s.ty.needs_ctx());
        let unused = if uses_ctx {
            ""
        } else {
            "        let _ = mp_ctx;\n"
        };
        let mut o = String::new();
        let _ = writeln!(
            o,
            "impl {p}::Wire for {rust} {{\n    type Capnp = {capnp};\n"
        );
        let _ = writeln!(
            o,
            "    fn write(&self, mut builder: {builder}, mp_ctx: &{p}::ServeContext) -> {p}::capnp::Result<()> {{\n{unused}        match self {{"
        );
        for slot in slots {
            match slot.ty {
                Ty::Void => {
                    let _ = writeln!(
                        o,
                        "            Self::{} => builder.set_{}(()),",
                        variant(slot),
                        slot.accessor
                    );
                }
                _ => {
                    let _ = writeln!(
                        o,
                        "            Self::{}(value) => {{\n{}}}",
                        variant(slot),
                        e.set_field(
                            &slot.ty,
                            "builder",
                            &slot.accessor,
                            &slot.ty.input_from_ref("value"),
                            0,
                            slot.generic
                        )
                    );
                }
            }
        }
        let _ = writeln!(o, "        }}\n        Ok(())\n    }}\n");
        let _ = writeln!(
            o,
            "    fn read(reader: {reader}, mp_ctx: &{p}::ServeContext) -> {p}::capnp::Result<Self> {{\n{unused}        Ok(match reader.which().map_err(|e| {p}::bad_value({:?}, e))? {{",
            name.display
        );
        for slot in slots {
            match slot.ty {
                Ty::Void => {
                    let _ = writeln!(
                        o,
                        "            {}::Which::{}(()) => Self::{},",
                        name.capnp,
                        variant(slot),
                        variant(slot)
                    );
                }
                _ => {
                    let _ = writeln!(
                        o,
                        "            {}::Which::{}(value) => Self::{}({}),",
                        name.capnp,
                        variant(slot),
                        variant(slot),
                        e.get_from(&slot.ty, "value", &slot.accessor, 0)
                    );
                }
            }
        }
        let _ = writeln!(o, "        }})\n    }}\n}}\n");
        Ok(o.replace("&mp_ctx", "mp_ctx"))
    }

    /// The `Wire` impl of a generic struct's instance.
    pub(crate) fn instance_impl(&self, ty: &Ty) -> capnp::Result<String> {
        let Ty::Generic(name, args) = ty else {
            return Ok(String::new());
        };
        let id = self
            .schema
            .names
            .iter()
            .find(|(_, n)| n.capnp == name.capnp)
            .map(|(id, _)| *id)
            .ok_or_else(|| capnp::Error::failed(format!("unknown struct {}", name.display)))?;
        let node = self.schema.node(id)?;
        let node::Struct(st) = node.which()? else {
            return Ok(String::new());
        };
        let bindings: Bindings = args
            .iter()
            .enumerate()
            .map(|(i, t)| ((id, i as u16), t.clone()))
            .collect();
        let (mut slots, _, _) =
            self.slots_bound(st.get_fields()?, false, &bindings, &name.display)?;
        self.box_recursive(id, &mut slots)?;
        self.wire_impl(ty, &slots)
    }

    pub(super) fn default_value(&self, ty: &Ty, field: field::Reader<'a>) -> capnp::Result<String> {
        let field::Slot(slot) = field.which()? else {
            return Ok("Default::default()".into());
        };
        if !slot.get_had_explicit_default() {
            return Ok(match ty {
                Ty::Enum(n) => self.enumerant(n, 0)?,
                _ => "Default::default()".into(),
            });
        }
        let v = slot.get_default_value()?;
        Ok(match v.which()? {
            value::Bool(b) => b.to_string(),
            value::Int8(x) => format!("{x}"),
            value::Int16(x) => format!("{x}"),
            value::Int32(x) => format!("{x}"),
            value::Int64(x) => format!("{x}"),
            value::Uint8(x) => format!("{x}"),
            value::Uint16(x) => format!("{x}"),
            value::Uint32(x) => format!("{x}"),
            value::Uint64(x) => format!("{x}"),
            value::Float32(x) => float_literal(f64::from(x), "f32"),
            value::Float64(x) => float_literal(x, "f64"),
            value::Text(t) => format!("{:?}.to_string()", t?.to_str()?),
            value::Data(d) => format!("vec!{:?}", d?),
            value::Enum(x) => match ty {
                Ty::Enum(n) => self.enumerant(n, x)?,
                _ => "Default::default()".into(),
            },
            _ => "Default::default()".into(),
        })
    }

    pub(super) fn enumerant(&self, name: &NodeName, index: u16) -> capnp::Result<String> {
        let id = self
            .schema
            .names
            .iter()
            .find(|(_, n)| n.capnp == name.capnp)
            .map(|(id, _)| *id)
            .ok_or_else(|| capnp::Error::failed("unknown enum".into()))?;
        let node::Enum(en) = self.schema.node(id)?.which()? else {
            return Err(capnp::Error::failed("not an enum".into()));
        };
        let enumerants = en.get_enumerants()?;
        let e = enumerants.get(u32::from(index));
        Ok(format!(
            "{}::{}",
            name.capnp,
            pascal(e.get_name()?.to_str()?)
        ))
    }

    pub(super) fn enumeration(&mut self, id: u64) -> capnp::Result<()> {
        let name = self.schema.name(id)?;
        if let Some(doc) = self.schema.doc(id) {
            let _ = writeln!(self.out, "{}///", doc_lines(doc, ""));
        }
        let _ = writeln!(
            self.out,
            "/// The capnp enum `{}` (capnpc's type: a value the peer sends that this build\n/// does not know fails the call with a protocol error).\npub type {} = {};\n",
            name.display, name.rust, name.capnp
        );
        Ok(())
    }
}
