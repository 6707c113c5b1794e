"""The compiled read path: a whole query answered by one SQL statement per root field.

It covers the common shapes (connections, lookups, nodes, edges, computed fields)
and declines anything else, which the ordinary resolvers then answer; both use the
same field definitions, filters, orderings and SQL expressions.
"""
