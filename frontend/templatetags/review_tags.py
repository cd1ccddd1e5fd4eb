"""Review bits shown on other pages: a rejection on the labeling page and queue, the dashboard's review panel."""
from __future__ import annotations

from django import template

from annotator.selectors_review import (
    membership_can_review,
    returned_queries,
    review_rejection_for,
    review_summary,
)

register = template.Library()


@register.inclusion_tag("frontend/review/_rejection_note.html")
def rejection_note(query):
    """The reviewer's comment on a query sent back to its annotator (nothing when it was not)."""
    return {"rejection": review_rejection_for(query=query), "query": query}


@register.inclusion_tag("frontend/review/_returned.html", takes_context=True)
def returned_queries_card(context, project):
    """On the annotator's queue: their rejected queries with the comments, and the review queue for reviewers."""
    user = context["request"].user
    return {"project": project, "returned": returned_queries(project=project, user=user),
            "can_review": membership_can_review(project=project, user=user)}


@register.simple_tag
def review_summary_for(project):
    return review_summary(project=project)
