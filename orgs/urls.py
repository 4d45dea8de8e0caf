"""Page URLs for getting in, organisations, members, invitations and policy."""

from django.contrib.auth import views as auth_views
from django.urls import path

from orgs import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password-reset/",
        views.PasswordResetView.as_view(),
        name="password_reset",
    ),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("signup/", views.SignupView.as_view(), name="signup"),
    path("signup/confirm/<str:token>/", views.SignupConfirmView.as_view(), name="signup-confirm"),
    path("orgs/new/", views.OrganizationCreateView.as_view(), name="org-create"),
    path("orgs/<slug:slug>/", views.org_home, name="org-home"),
    path("orgs/<slug:slug>/settings/members/", views.MembersView.as_view(), name="members"),
    path(
        "orgs/<slug:slug>/settings/members/invite/",
        views.MemberInviteView.as_view(),
        name="member-invite",
    ),
    path(
        "orgs/<slug:slug>/settings/members/<int:membership_id>/role/",
        views.MemberRoleView.as_view(),
        name="member-role",
    ),
    path(
        "orgs/<slug:slug>/settings/members/<int:membership_id>/remove/",
        views.MemberRemoveView.as_view(),
        name="member-remove",
    ),
    path(
        "orgs/<slug:slug>/settings/invitations/<int:invitation_id>/withdraw/",
        views.InvitationRevokeView.as_view(),
        name="invitation-revoke",
    ),
    path("orgs/<slug:slug>/settings/policy/", views.PolicyView.as_view(), name="policy"),
    path(
        "invitations/<str:token>/", views.InvitationAcceptView.as_view(), name="invitation-accept"
    ),
]
