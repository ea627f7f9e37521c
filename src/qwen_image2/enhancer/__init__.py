"""The prompt enhancer: rewrites what people type into what the generator understands (2.1's JSON contract)."""
