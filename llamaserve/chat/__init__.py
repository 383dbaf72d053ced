# TEMP stub until the chat branch merges
import jinja2.sandbox
class TemplateError(ValueError): pass
class ChatTemplate:
    def __init__(self, source, bos_token="", eos_token=""):
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        def raise_exception(m): raise TemplateError(m)
        env.globals["raise_exception"] = raise_exception
        try:
            self.t = env.from_string(source)
        except jinja2.TemplateError as e:
            raise TemplateError(str(e))
        self.bos, self.eos = bos_token, eos_token
        self.caps = None
    def render(self, messages, add_generation_prompt=True, tools=None, documents=None, **kw):
        return self.t.render(messages=messages, add_generation_prompt=add_generation_prompt, tools=tools, bos_token=self.bos, eos_token=self.eos, **kw)
