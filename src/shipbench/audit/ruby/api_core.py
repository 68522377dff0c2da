"""Facts about Ruby core classes and modules that gems inherit from or mix in (Ruby 3.1-3.4).

Invariants: only PUBLIC methods are listed (a call with an explicit receiver cannot reach private
ones); a class or module missing from `CORE` is unknown, so lookups through it stay uncertain.
`OBJECT_EXTRAS` are methods every object has in a Rails app (ActiveSupport core extensions, json).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class CoreClass:
    name: str
    kind: str  # "class" | "module"
    superclass: str | None = None
    includes: tuple[str, ...] = ()
    instance: frozenset[str] = frozenset()
    singleton: frozenset[str] = frozenset()
    init_params: tuple[str, ...] = field(default=())  # ParamKind values of #initialize
    adds_singleton: frozenset[str] = frozenset()  # class methods granted to a class that includes it


_KERNEL = _words(
    """!~ <=> === =~ class clone define_singleton_method display dup enum_for eql? extend freeze frozen?
    hash inspect instance_of? instance_variable_defined? instance_variable_get instance_variable_set
    instance_variables is_a? itself kind_of? method methods nil? object_id private_methods
    protected_methods public_method public_methods public_send remove_instance_variable respond_to?
    send singleton_class singleton_method singleton_methods tap then to_enum to_s yield_self"""
)
_BASIC_OBJECT = _words("! != == __id__ __send__ equal? instance_eval instance_exec")
OBJECT_EXTRAS = _words(
    """present? blank? presence presence_in try try! in? to_param to_query as_json to_json
    instance_values instance_variable_names deep_dup duplicable? acts_like? html_safe? with"""
)
_MODULE = _words(
    """< <= > >= <=> == === alias_method ancestors attr attr_accessor attr_reader attr_writer autoload
    autoload? class_eval class_exec class_variable_defined? class_variable_get class_variable_set
    class_variables const_defined? const_get const_missing const_set const_source_location constants
    define_method freeze include include? included_modules inspect instance_method instance_methods
    method_defined? module_eval module_exec name prepend private_class_method private_constant
    private_instance_methods private_method_defined? protected_instance_methods
    protected_method_defined? public_class_method public_instance_method public_instance_methods
    public_method_defined? remove_class_variable remove_method undef_method to_s refinements
    set_temporary_name singleton_class?"""
)
_CLASS = _words("allocate new superclass subclasses attached_object")
_ENUMERABLE = _words(
    """all? any? chain chunk chunk_while collect collect_concat compact count cycle detect drop
    drop_while each_cons each_entry each_slice each_with_index each_with_object entries filter
    filter_map find find_all find_index first flat_map grep grep_v group_by include? inject lazy map
    max max_by member? min min_by minmax minmax_by none? one? partition reduce reject reverse_each
    select slice_after slice_before slice_when sort sort_by sum take take_while tally to_a to_h to_set
    uniq zip
    as_json exclude? excluding including index_by index_with many? maximum minimum pick pluck
    sole without compact_blank in_order_of"""
)
_COMPARABLE = _words("< <= == > >= between? clamp")
_FORWARDABLE = _words(
    """def_delegator def_delegators def_instance_delegator def_instance_delegators delegate
    instance_delegate"""
)
_EXCEPTION = _words(
    """== backtrace backtrace_locations cause detailed_message exception full_message inspect message
    set_backtrace to_s"""
)
_STRUCT = _words(
    """== [] []= deconstruct deconstruct_keys dig each each_pair eql? filter hash inspect length members
    select size to_a to_h to_s values values_at"""
)
_DATA = _words("== deconstruct deconstruct_keys eql? hash inspect members to_h to_s with")

CORE: dict[str, CoreClass] = {
    c.name: c
    for c in (
        CoreClass("BasicObject", "class", instance=_BASIC_OBJECT),
        CoreClass("Kernel", "module", instance=_KERNEL | OBJECT_EXTRAS),
        CoreClass("Object", "class", superclass="BasicObject", includes=("Kernel",)),
        CoreClass("Module", "class", superclass="Object", instance=_MODULE),
        CoreClass("Class", "class", superclass="Module", instance=_CLASS),
        CoreClass("Enumerable", "module", instance=_ENUMERABLE),
        CoreClass("Comparable", "module", instance=_COMPARABLE),
        CoreClass("Forwardable", "module", instance=_FORWARDABLE),
        CoreClass("SingleForwardable", "module", instance=_FORWARDABLE),
        CoreClass("Singleton", "module", adds_singleton=_words("instance")),
        CoreClass(
            "Exception",
            "class",
            superclass="Object",
            instance=_EXCEPTION,
            singleton=_words("exception to_tty?"),
            init_params=("opt",),
        ),
        CoreClass("StandardError", "class", superclass="Exception", init_params=("opt",)),
        CoreClass("RuntimeError", "class", superclass="StandardError", init_params=("opt",)),
        CoreClass("ArgumentError", "class", superclass="StandardError", init_params=("opt",)),
        CoreClass("TypeError", "class", superclass="StandardError", init_params=("opt",)),
        CoreClass("NotImplementedError", "class", superclass="StandardError", init_params=("opt",)),
        CoreClass("IOError", "class", superclass="StandardError", init_params=("opt",)),
        CoreClass("KeyError", "class", superclass="StandardError", init_params=("rest", "keyrest")),
        CoreClass("NameError", "class", superclass="StandardError", init_params=("rest", "keyrest")),
        CoreClass("NoMethodError", "class", superclass="NameError", init_params=("rest", "keyrest")),
        CoreClass(
            "Struct",
            "class",
            superclass="Object",
            includes=("Enumerable",),
            instance=_STRUCT,
            singleton=_words("members keyword_init? []"),
            init_params=("rest", "keyrest"),
        ),
        CoreClass(
            "Data",
            "class",
            superclass="Object",
            instance=_DATA,
            singleton=_words("members define []"),
            init_params=("rest", "keyrest"),
        ),
    )
}

# Ancestors every object has after its own chain: Object, Kernel, BasicObject.
OBJECT_TAIL = ("Object", "Kernel", "BasicObject")
