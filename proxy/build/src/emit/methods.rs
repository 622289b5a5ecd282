//! Methods: what each one is, and the client call and server method
//! generated for it.

use super::*;

impl<'a> FileGen<'_, 'a> {
    pub(super) fn methods(&self, iface_id: u64) -> capnp::Result<Vec<Method>> {
        let node = self.schema.node(iface_id)?;
        let node::Interface(iface) = node.which()? else {
            return Ok(Vec::new());
        };
        let iname = self.schema.name(iface_id)?;
        let mut methods = Vec::new();
        for (index, m) in iface.get_methods()?.iter().enumerate() {
            let doc = self.schema.member_doc(iface_id, index).map(str::to_string);
            let name = m.get_name()?.to_str()?.to_string();
            let params_node = self.schema.node(m.get_param_struct_type())?;
            let results_node = self.schema.node(m.get_result_struct_type())?;
            let node::Struct(ps) = params_node.which()? else {
                continue;
            };
            let node::Struct(rs) = results_node.which()? else {
                continue;
            };
            let param_fields: Vec<field::Reader<'a>> = ps.get_fields()?.iter().collect();
            let result_fields: Vec<field::Reader<'a>> = rs.get_fields()?.iter().collect();
            let is_thread_map = |f: &field::Reader<'a>| -> capnp::Result<bool> {
                match f.which()? {
                    field::Slot(s) => self.schema.is_thread_map(s.get_type()?),
                    _ => Ok(false),
                }
            };
            let kind = if param_fields.len() == 1
                && is_thread_map(&param_fields[0])?
                && result_fields.len() == 1
                && is_thread_map(&result_fields[0])?
            {
                Kind::Construct
            } else if name == "destroy" && result_fields.is_empty() {
                Kind::Destroy
            } else {
                Kind::Regular
            };
            let (params, has_context, _) = if kind == Kind::Construct {
                (Vec::new(), false, None)
            } else {
                self.slots(ps.get_fields()?, true, &format!("{}.{name}", iname.display))?
            };
            let (results, _, exception) = if kind == Kind::Construct {
                (Vec::new(), false, None)
            } else {
                self.slots(
                    rs.get_fields()?,
                    false,
                    &format!("{}.{name}", iname.display),
                )?
            };
            let rust = match Schema::text_annotation(m.get_annotations()?, self.schema.proxy.name)?
            {
                Some(n) if crate::model::is_identifier(&n) => ident(&n),
                _ => ident(&crate::model::rust_snake(&name)),
            };
            // `{Method}Output`, or, where another interface of the file has
            // a method of the same name, `{Interface}{Method}Output`.
            let output = if results.len() > 1 {
                if self.method_name_shared(iface_id, &name)? {
                    Some(format!("{}{}Output", iname.rust, pascal(&name)))
                } else {
                    Some(format!("{}Output", pascal(&name)))
                }
            } else {
                None
            };
            methods.push(Method {
                trace: format!("{}.{}", iname.display, name),
                capnpc: snake(&name),
                capnpc_pascal: pascal(&name),
                rust,
                kind,
                has_context,
                params,
                results,
                exception,
                output,
                doc,
            });
        }
        Ok(methods)
    }

    /// Whether an interface of the same file as `iface_id`, other than
    /// it, has a method named `method`.
    pub(super) fn method_name_shared(&self, iface_id: u64, method: &str) -> capnp::Result<bool> {
        let module = &self.schema.name(iface_id)?.proxy_mod;
        for (id, name) in &self.schema.names {
            if *id == iface_id || name.proxy_mod != *module {
                continue;
            }
            if let node::Interface(other) = self.schema.node(*id)?.which()? {
                for m in other.get_methods()? {
                    if m.get_name()?.to_str()? == method {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// The Rust return type of a method, `Result` included.
    pub(super) fn return_type(&self, m: &Method) -> String {
        let rt = self.rt;
        let value = match (&m.output, m.results.first()) {
            (Some(output), _) => output.clone(),
            (None, Some(slot)) => slot_owned(slot),
            (None, None) => "()".into(),
        };
        match &m.exception {
            Some(ex) => format!(
                "{rt}::Result<::std::result::Result<{value}, {}>>",
                slot_owned(ex)
            ),
            None => format!("{rt}::Result<{value}>"),
        }
    }

    pub(super) fn signature(&self, m: &Method) -> String {
        // The schema decides how many parameters a method takes.
        let allow = if m.params.len() > 6 {
            "#[allow(clippy::too_many_arguments)]\n"
        } else {
            ""
        };
        let mut s = format!("{allow}fn {}(&self", m.rust);
        for slot in &m.params {
            let _ = write!(s, ", {}: {}", slot.name, slot_param(slot));
        }
        let _ = write!(s, ") -> {}", self.return_type(m));
        s
    }

    pub(super) fn thread_doc(m: &Method) -> &'static str {
        if m.has_context {
            "Runs, in the serving process, on the worker thread dedicated to the calling\n    /// thread (or, called back while that process serves a call from this thread, on\n    /// the thread waiting for that call)."
        } else {
            "The method has no `Context`: it runs, in the serving process, on a thread of the\n    /// pool that process keeps for such methods, never on its event loop."
        }
    }

    pub(super) fn output_structs(&mut self, methods: &[Method]) {
        for m in methods {
            let Some(output) = &m.output else { continue };
            let mut o = format!(
                "/// The results of `{}`.\n{}\npub struct {output} {{\n",
                m.trace,
                derives(&m.results, false)
            );
            for slot in &m.results {
                let _ = writeln!(
                    o,
                    "    /// `{}`.\n    pub {}: {},",
                    slot.accessor,
                    slot.name,
                    slot_owned(slot)
                );
            }
            o.push_str("}\n\n");
            self.out.push_str(&o);
        }
    }

    /// The body of a client method: a blocking call on `object`.
    pub(super) fn client_call(
        &self,
        m: &Method,
        object: &str,
        capnpc_mod: &str,
        cast_from: Option<&str>,
    ) -> String {
        let p = self.p();
        let e = self.emit();
        let needs_ctx = m
            .params
            .iter()
            .chain(&m.results)
            .chain(&m.exception)
            .any(|s| s.ty.needs_ctx());
        let mut o = String::new();
        let _ = writeln!(o, "{object}.call({:?}, |mp_client, mp_cx| {{", m.trace);
        if let Some(derived) = cast_from {
            let _ = writeln!(
                o,
                "let mp_client: {capnpc_mod}::Client = {p}::capnp::capability::FromClientHook::new({p}::capnp::capability::FromClientHook::as_client_hook(mp_client).add_ref());\nlet _: &{derived}::Client = &mp_client;"
            );
            // The line above only names the derived type for readers; the
            // cast is what matters.
            o = o.replace(&format!("\nlet _: &{derived}::Client = &mp_client;"), "");
        }
        if needs_ctx {
            let _ = writeln!(o, "let mp_ctx = mp_cx.serve_context();");
        }
        let _ = writeln!(o, "let mp_sent = {p}::attempt(|| {{");
        let binding = if m.has_context || !m.params.is_empty() {
            "let mut mp_request"
        } else {
            "let mp_request"
        };
        let _ = writeln!(o, "{binding} = mp_client.{}_request();", m.capnpc);
        if m.has_context || !m.params.is_empty() {
            let _ = writeln!(o, "let mut mp_params = mp_request.get();");
        }
        if m.has_context {
            let _ = writeln!(o, "mp_cx.set_context(mp_params.reborrow().init_context());");
        } else {
            let _ = writeln!(o, "let _ = mp_cx;");
        }
        for slot in &m.params {
            let input = slot.ty.input_from_param(&slot.name);
            let _ = write!(
                o,
                "{}",
                e.set_slot(
                    slot,
                    "mp_params",
                    if slot.has.is_some() {
                        &slot.name
                    } else {
                        &input
                    },
                    |v| slot.ty.input_from_param(v)
                )
            );
        }
        let _ = writeln!(o, "Ok(mp_request.send().promise)\n}});");
        let _ = writeln!(o, "async move {{\nlet mp_response = mp_sent?.await?;");
        if m.results.is_empty() && m.exception.is_none() {
            let _ = writeln!(o, "let _ = mp_response;\nOk(())\n}}\n}})");
            return o;
        }
        let _ = writeln!(o, "let mp_results = mp_response.get()?;");
        let value = self.read_results(m, "mp_results");
        match &m.exception {
            Some(ex) => {
                let _ = writeln!(
                    o,
                    "if mp_results.has_{}() {{\nreturn Ok(Err({}));\n}}\nOk(Ok({value}))",
                    ex.accessor,
                    e.get(&ex.ty, "mp_results", &ex.accessor, &ex.accessor, 0)
                );
            }
            None => {
                // `Ok(x?)` is `x`, when the value is one fallible read.
                match value.strip_suffix('?') {
                    Some(fallible) => {
                        let _ = writeln!(o, "{fallible}");
                    }
                    None => {
                        let _ = writeln!(o, "Ok({value})");
                    }
                }
            }
        }
        let _ = writeln!(o, "}}\n}})");
        o
    }

    pub(super) fn read_results(&self, m: &Method, r: &str) -> String {
        let e = self.emit();
        match (&m.output, m.results.first()) {
            (Some(output), _) => {
                let mut s = format!("{output} {{\n");
                for slot in &m.results {
                    let _ = writeln!(
                        s,
                        "{}: {},",
                        slot.name,
                        e.get_slot(slot, r, &format!("result.{}", slot.accessor))
                    );
                }
                s.push('}');
                s
            }
            (None, Some(slot)) => e.get_slot(slot, r, &format!("result.{}", slot.accessor)),
            (None, None) => "()".into(),
        }
    }

    /// Statements that write `value` (the implementation's result) into
    /// results builder `b`.
    pub(super) fn write_results(&self, m: &Method, b: &str) -> String {
        let e = self.emit();
        let mut o = String::new();
        // One result slot, read from `field` (a reference to the value).
        let set = |slot: &Slot, field: String| -> String {
            let input = slot.ty.input_from_ref(&field);
            e.set_slot(
                slot,
                b,
                if slot.has.is_some() { &field } else { &input },
                |v| slot.ty.input_from_ref(v),
            )
        };
        let write_value = |value: &str| -> String {
            let mut o = String::new();
            match (&m.output, m.results.first()) {
                (Some(_), _) => {
                    for slot in &m.results {
                        o.push_str(&set(slot, format!("&{value}.{}", slot.name)));
                    }
                }
                (None, Some(slot)) => o.push_str(&set(slot, format!("&{value}"))),
                (None, None) => {
                    let _ = writeln!(o, "let () = {value};");
                }
            }
            o
        };
        match &m.exception {
            Some(ex) => {
                let _ = writeln!(
                    o,
                    "match mp_value {{\nOk(mp_value) => {{\n{}}}\nErr(mp_raised) => {{\n{}}}\n}}",
                    write_value("mp_value"),
                    e.set(
                        &ex.ty,
                        b,
                        &ex.accessor,
                        &ex.ty.input_from_ref("&mp_raised"),
                        0
                    )
                );
            }
            None => o.push_str(&write_value("mp_value")),
        }
        o
    }

    /// A server method of the adapter `server` for `m` (of capnpc module
    /// `capnpc_mod`), calling `call` (an expression using `object` and the
    /// parameters read into owned variables).
    pub(super) fn server_method(
        &self,
        m: &Method,
        capnpc_mod: &str,
        call: &str,
        destroy_take: &str,
    ) -> String {
        let p = self.p();
        let e = self.emit();
        let mut o = String::new();
        let results_var = if m.kind == Kind::Destroy
            || (m.results.is_empty() && m.exception.is_none() && m.kind != Kind::Construct)
        {
            "_mp_results"
        } else {
            "mut mp_results"
        };
        let _ = writeln!(
            o,
            "async fn {}(self: ::std::rc::Rc<Self>, mp_params: {capnpc_mod}::{}Params, {results_var}: {capnpc_mod}::{}Results) -> {p}::capnp::Result<()> {{",
            ident(&m.capnpc),
            m.capnpc_pascal,
            m.capnpc_pascal
        );
        match m.kind {
            Kind::Construct => {
                let _ = writeln!(
                    o,
                    "let peer = mp_params.get()?.get_thread_map()?;\nlet ours = self.ctx.construct(peer).map_err(|e| e.to_capnp())?;\nmp_results.get().set_thread_map(ours);\nOk(())\n}}"
                );
                return o;
            }
            Kind::Destroy => {
                let _ = writeln!(
                    o,
                    "let mp_object = {destroy_take};\nself.ctx.run(mp_params.get()?.get_context(), {:?}, move || {{\ndrop(mp_object);\nOk(())\n}}).await\n}}",
                    m.trace
                );
                return o;
            }
            Kind::Regular => {}
        }
        let needs_ctx = m
            .params
            .iter()
            .chain(&m.results)
            .chain(&m.exception)
            .any(|s| s.ty.needs_ctx());
        // `Data` and `Text` parameters are lent to the job straight from the
        // request (no copy): `run_lending` keeps the request alive for it.
        let lent: Vec<&Slot> = m
            .params
            .iter()
            .filter(|s| m.has_context && s.has.is_none() && matches!(s.ty, Ty::Data | Ty::Text))
            .collect();
        let reader = if lent.is_empty() {
            "mp_params"
        } else {
            "mp_reader"
        };
        if m.has_context || !m.params.is_empty() {
            let _ = writeln!(o, "let {reader} = mp_params.get()?;");
        } else {
            let _ = writeln!(o, "let _ = mp_params;");
        }
        if needs_ctx {
            let _ = writeln!(o, "let mp_ctx = self.ctx.clone();");
        }
        for slot in &m.params {
            if lent.iter().any(|l| l.name == slot.name) {
                let borrowed = match slot.ty {
                    Ty::Text => format!(
                        "{reader}.get_{}()?.to_str().map_err(|e| {p}::bad_value({:?}, e))?",
                        slot.accessor, slot.accessor
                    ),
                    _ => format!("{reader}.get_{}()?", slot.accessor),
                };
                let _ = writeln!(
                    o,
                    "// SAFETY: `run_lending` below keeps the request alive until the job has\n// run or been dropped, and nothing writes to it meanwhile.\nlet {} = unsafe {{ {p}::Lent::new({borrowed}) }};",
                    slot.name
                );
            } else {
                let _ = writeln!(
                    o,
                    "let {} = {};",
                    slot.name,
                    e.get_slot(slot, reader, &slot.accessor)
                );
            }
        }
        let _ = writeln!(
            o,
            "let mp_object = self.object.get().map_err(|e| e.to_capnp())?;"
        );
        let unit = m.results.is_empty() && m.exception.is_none();
        let binding = if unit { "" } else { "let mp_value = " };
        if !lent.is_empty() {
            // The lent parameters are references in the job: passed as they
            // are, not borrowed again.
            let mut call = call.to_string();
            for slot in &lent {
                call = call.replace(&format!("&{},", slot.name), &format!("{},", slot.name));
                call = call.replace(&format!("&{})", slot.name), &format!("{})", slot.name));
            }
            let names: Vec<&str> = lent.iter().map(|s| s.name.as_str()).collect();
            let gets: Vec<String> = names.iter().map(|n| format!("{n}.get()")).collect();
            let (pattern, values) = if names.len() == 1 {
                (names[0].to_string(), gets[0].clone())
            } else {
                (
                    format!("({})", names.join(", ")),
                    format!("({})", gets.join(", ")),
                )
            };
            let _ = writeln!(
                o,
                "{binding}self.ctx.run_lending(mp_params.hook, |mp_hook| mp_hook.get()?.get_as::<{capnpc_mod}::{}_params::Reader<'_>>()?.get_context(), {:?}, move || {{\n\
                 // SAFETY: the request is still alive: `run_lending` keeps it until this\n// job has run.\n\
                 let {pattern} = unsafe {{ {values} }};\n{call}\n}}).await?;",
                m.capnpc, m.trace
            );
        } else if m.has_context {
            let job = format!("move || {call}");
            let _ = writeln!(
                o,
                "{binding}self.ctx.run(mp_params.get_context(), {:?}, {job}).await?;",
                m.trace
            );
        } else {
            let job = format!("move || {call}");
            let _ = writeln!(
                o,
                "{binding}{}::run_detached({:?}, {job}).await?;",
                self.rt, m.trace
            );
        }
        if !unit {
            let _ = writeln!(o, "let mut mp_results = mp_results.get();");
            o.push_str(&self.write_results(m, "mp_results"));
        }
        let _ = writeln!(o, "Ok(())\n}}");
        o
    }

    /// The arguments an implementation is called with, from the owned
    /// variables the server read.
    pub(super) fn call_args(m: &Method) -> String {
        m.params
            .iter()
            .map(|s| match s.has {
                None => s.ty.param_from_owned(&s.name),
                Some(_) => s.ty.option_param_from_owned(&s.name),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
